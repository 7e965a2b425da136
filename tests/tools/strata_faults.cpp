// strata-faults: the test-only twin of `strata` (built with the tests, never installed). The
// same command line (strata::cli::run_cli), with fault hooks (core/faults.hpp) read from the
// environment, for the tests that run the real binary under mpiexec or Slurm:
//   STRATA_INJECT_FAILURE="rank=R,step=S"       global rank R throws at step S
//   STRATA_TEST_BAD_BATCHES="kind=nan_grad|loss_spike,batches=B1-B2[,factor=F]"
//                                               the steps on global batches B1..B2 are bad
//   STRATA_TEST_SAVE_PAUSE="step=S|*,seconds=T" the save of step S (*: every save) pauses T s
//                                               halfway through its tensors
// A malformed value is an error naming the variable, before anything runs. The production
// binary `strata` reads none of these variables.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "strata/cli/run_cli.hpp"
#include "strata/core/error.hpp"
#include "strata/core/faults.hpp"

namespace {

using strata::FaultHooks;

// Whether `spec` matched `format` whole: `n` is the %n at its end (-1: it stopped before).
bool whole(const char* spec, int n) { return n >= 0 && spec[n] == '\0'; }

FaultHooks hooks_from_env() {
  FaultHooks h;
  if (const char* spec = std::getenv("STRATA_INJECT_FAILURE")) {
    int n = -1;
    if (std::sscanf(spec, "rank=%d,step=%ld%n", &h.failure.rank, &h.failure.step, &n) != 2 ||
        !whole(spec, n) || h.failure.rank < 0 || h.failure.step < 1)
      throw strata::make_error("STRATA_INJECT_FAILURE='", spec, "': expected rank=R,step=S (R >= 0, S >= 1)");
  }
  if (const char* spec = std::getenv("STRATA_TEST_BAD_BATCHES")) {
    FaultHooks::BadBatches& b = h.bad_batches;
    char kind[16] = {};
    unsigned long long first = 0, last = 0;
    int n = -1, m = -1;
    const int got = std::sscanf(spec, "kind=%15[a-z_],batches=%llu-%llu%n,factor=%lf%n", kind, &first, &last,
                                &n, &b.factor, &m);
    const bool ok = (got == 3 && whole(spec, n)) || (got == 4 && whole(spec, m));
    const std::string k = kind;
    if (!ok || (k != "nan_grad" && k != "loss_spike") || first > last)
      throw strata::make_error("STRATA_TEST_BAD_BATCHES='", spec,
                               "': expected kind=nan_grad|loss_spike,batches=B1-B2[,factor=F]");
    b.kind = k == "nan_grad" ? FaultHooks::BadBatches::nan_grad : FaultHooks::BadBatches::loss_spike;
    b.first = first;
    b.last = last;
  }
  if (const char* spec = std::getenv("STRATA_TEST_SAVE_PAUSE")) {
    FaultHooks::SavePause& p = h.save_pause;
    int n = -1;
    p.every = std::sscanf(spec, "step=*,seconds=%lf%n", &p.seconds, &n) == 1 && whole(spec, n);
    bool ok = p.every;
    if (!p.every) {
      n = -1;
      ok = std::sscanf(spec, "step=%ld,seconds=%lf%n", &p.step, &p.seconds, &n) == 2 && whole(spec, n) &&
           p.step >= 1;
    }
    if (!ok || !(p.seconds >= 0))
      throw strata::make_error("STRATA_TEST_SAVE_PAUSE='", spec,
                               "': expected step=S|*,seconds=T (S >= 1, T >= 0)");
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  FaultHooks hooks;
  try {
    hooks = hooks_from_env();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata-faults: error: %s\n", e.what());
    return 2;
  }
  return strata::cli::run_cli(argc, argv, &hooks);
}
