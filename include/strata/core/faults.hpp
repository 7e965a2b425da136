// Fault injection for tests: the failures a test needs the real trainer to meet (a rank that
// throws, bad batches, a checkpoint save held halfway), as plain data. The trainer and the
// checkpointer take a `const FaultHooks*` that production code never fills (nullptr, or all
// defaults: nothing happens). Tests set them directly (unit and MPI suites), or run the
// test-only binary `strata-faults` (tests/tools/strata_faults.cpp), which is `strata` with
// hooks read from STRATA_INJECT_FAILURE, STRATA_TEST_BAD_BATCHES and STRATA_TEST_SAVE_PAUSE.
// The production binary reads none of them.
#pragma once
#include <cstdint>

namespace strata {

struct FaultHooks {
  // Global rank `rank` throws at the start of step `step` (-1: never), to test that one
  // failing rank ends the whole job instead of hanging it.
  struct Failure {
    int rank = -1;
    long step = -1;
  } failure;

  // The steps that train on global batches first..last (0-based data positions: step B + 1 of
  // a run without skips) are bad: nan_grad scales the loss gradient by NaN on every rank (so
  // every gradient and the global norm are NaN), loss_spike multiplies the step's loss by
  // `factor` before the guard sees it. Keyed by the data, not the step: data skipped by a
  // rollback takes its bad batches with it.
  struct BadBatches {
    enum Kind { none, nan_grad, loss_spike } kind = none;
    std::uint64_t first = 0, last = 0;
    double factor = 100;
    bool hits(Kind k, std::uint64_t batch) const { return kind == k && batch >= first && batch <= last; }
  } bad_batches;

  // The checkpoint save of step `step` (every save when `every`) pauses `seconds` halfway
  // through its tensors, so a test can kill the job in the middle of a save (a background
  // save: while training goes on).
  struct SavePause {
    long step = -1;
    bool every = false;
    double seconds = 0;
    bool hits(long s) const { return seconds > 0 && (every || s == step); }
  } save_pause;
};

}  // namespace strata
