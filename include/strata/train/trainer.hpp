// The trainer loop: build the rank grid and the components from their configs, plan and
// allocate everything, then run steps that allocate nothing:
//   this rank's micro-batches from the async loader (prefetched while the last step ran)
//   pipeline schedule over the micro-batches (forward/backward, gradients accumulate;
//   gradient buckets reduced over DP while backward runs)
//   global gradient norm -> clip factor -> AdamW (ZeRO-1: on this rank's shard, then
//   all-gather) with the scheduled learning rate
//   (a bad step — NaN/Inf loss or gradient norm, or a loss spike — is skipped instead:
//   guard.hpp; after guard.rollback_after of them in a row the run goes back to its last
//   checkpoint and skips the data since it)
//   checkpoints every ckpt.interval steps (written in the background while training goes on,
//   ckpt.async), at the end, and when SIGTERM/SIGUSR1 arrives (then the run stops after the
//   save); train.resume continues from one, in any layout
//   metrics: one JSON object per step in <out_dir>/metrics.jsonl (rank 0), a log line every
//   train.log_interval steps, and per-rank logs on request (train.rank_logs).
// Every eval.interval steps and at the end: the validation loss and perplexity on a fixed set
// of held-out windows (a forward-only pipeline pass, objectives.hpp), one more JSON line.
// train.objective picks causal or masked LM; train.seq_len_warmup grows the sequence length.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/config.hpp"
#include "strata/core/faults.hpp"
#include "strata/model/parameters.hpp"
#include "strata/train/guard.hpp"

namespace strata::train {

struct StepMetrics {
  long step = 0;
  double loss = 0;  // mean token loss of the global batch
  double lr = 0;
  double grad_norm = 0;          // before clipping
  int seq_len = 0;               // sequence length of this step (< train.seq_len during warm-up)
  std::int64_t tokens = 0;       // tokens processed by the step (global batch x seq_len)
  std::int64_t loss_tokens = 0;  // tokens with a target (masked LM: the chosen positions)
  double tokens_per_s = 0;
  double step_ms = 0;
  double cpu_ms = 0;  // CPU time of all ranks during the step, summed (strata plan --calibrate --time cpu)
  double tflops = 0;  // achieved model TFLOP/s per rank (6N + attention rule, at seq_len)
  double mfu = 0;     // tflops / per-rank peak
  std::size_t mem_bytes = 0;              // peak resident memory of this process
  double compute_ms = 0;                  // forward/backward kernels of this rank
  double bubble_fraction = 0;             // (pp - 1) / (v m): the schedule's idle share
  double pipeline_wait_ms = 0;            // waiting on neighbouring stages
  double dp_wait_ms = 0;                  // waiting on gradient reduction and parameter all-gather
  std::size_t optimizer_state_bytes = 0;  // fp32 Adam moments on this rank
  double data_wait_ms = 0;                // time the step waited for its batches (0 when prefetch keeps up)
  std::uint64_t samples = 0;              // the data position: global samples before this step's batch
  bool skipped = false;                   // a bad step: no optimizer update
  BadKind bad = BadKind::none;            // why
  // Checkpoint at this step's end, on the training thread: the wait for the previous background
  // save and the whole cost (wait + the snapshot copy; a synchronous save: all of it).
  double save_wait_ms = 0;
  double ckpt_ms = 0;
  bool saving = false;  // a background save was being written when the step began
};

// A rollback of the bad-step guard: from `from_step` back to the checkpoint of `to_step`; the
// global samples [skip_begin, skip_end) were skipped.
struct Rollback {
  long from_step = 0, to_step = 0;
  std::uint64_t skip_begin = 0, skip_end = 0;
  std::string checkpoint;
  std::vector<long> bad_steps;  // the run of bad steps that caused it
};

struct EvalMetrics {
  long step = 0;
  double loss = 0;        // mean target-token loss on the validation set
  double perplexity = 0;  // exp(loss)
  std::int64_t tokens = 0;
};

struct TrainSummary {
  // The steps of the final trajectory (a rollback drops those after its checkpoint; skipped
  // bad steps are in it, marked).
  std::vector<StepMetrics> steps;
  double peak_tflops = 0;          // per rank, the peak MFU was measured against
  std::size_t planned_bytes = 0;   // parameters + optimizer + activations on this rank, as planned
  double valid_loss = -1;          // mean token loss on the held-out windows at the end; -1: none
  std::vector<EvalMetrics> evals;  // every validation run, in order
  // This rank's parameters after training, every chunk's flat buffer concatenated, and the
  // tensors in it (offsets into final_params): what the layout-equivalence tests compare (GPU
  // runs: empty above 2^28 parameters per rank, where the host copy would cost tens of GB).
  std::vector<float> final_params;
  std::vector<model::ParamInfo> final_param_info;
  // Checkpoints and preemption (docs/checkpoints.md).
  std::string resumed_from;     // the checkpoint this run started from; "" for a fresh start
  long first_step = 1;          // the first step this run executed
  long last_step = 0;           // the last step it completed
  int stop_signal = 0;          // SIGTERM/SIGUSR1 that ended the run early (after a save); 0: none
  std::string last_checkpoint;  // the last checkpoint it published; ""
  // The bad-step guard: every bad step (also those a rollback dropped from `steps`), the
  // rollbacks, and its state at the end.
  std::vector<StepMetrics> bad_steps;
  std::vector<Rollback> rollbacks;
  ckpt::GuardState guard;
  bool async_checkpoints = false;  // saves were written in the background
};

// Collective over `world`: every rank of the job calls it with the same config. `faults`:
// failures injected by tests (core/faults.hpp); production passes none.
TrainSummary run_training(const config::JobConfig& job, MPI_Comm world, const FaultHooks* faults = nullptr);

// `strata train --dry-run`: the job as `ranks` ranks would run it (ranks 0: tp x pp x dp of the
// config, dp 0 counting as 1), without data, device or other ranks: the grid, the batch, what
// the backend supports (a clear error otherwise), each pipeline stage's memory, and rank
// `rank`'s whole engine plan (schedule, communicator groups, every memory table). Any build
// plans any backend (a CPU-only build dry-runs a device: cuda job).
std::string dry_run(const config::JobConfig& job, int ranks, int rank);

}  // namespace strata::train
