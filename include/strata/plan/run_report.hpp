// Training-run reports (`strata report run RUN_DIR...`): the curves of one or several runs,
// overlaid, and a Markdown summary, from what each run wrote in its folder:
//   metrics.jsonl  step records (loss, lr, grad_norm, tokens_per_s, mfu, mem_bytes, step_ms,
//                  compute_ms, data/pipeline/dp waits, the checkpoint's cost ckpt_ms and
//                  save_wait_ms, `skipped` bad steps with a null loss or norm when not finite),
//                  validation records (valid_loss), straggler records ({"step": S, "stragglers":
//                  {...}}, train/stragglers.hpp) and rollback records ({"step": S, "rollback":
//                  {...}}: the bad-step guard went back to the checkpoint of step S)
//   config.yaml    the job config (model name, layout)
// A step recorded twice (a run that resumed and repeated it) counts once, its last record.
// Throughput, TFLOP/s and MFU are those of `strata report scaling` (plan/scaling.hpp: tokens of
// the measured steps over their time, after the warm-up steps).
#pragma once
#include <string>
#include <vector>

namespace strata::plan {

struct RunStep {
  long step = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, mfu = 0, mem_mib = 0;
  double step_ms = 0, compute_ms = 0, data_wait_ms = 0, pipeline_wait_ms = 0, dp_wait_ms = 0;
  double tokens = 0;
  double ckpt_ms = 0, save_wait_ms = 0;  // the training thread's time on a checkpoint at the step's end
  bool skipped = false;                  // a bad step (no update); loss or grad_norm NaN when not finite
};

struct RunRollback {
  long to_step = 0, from_step = 0;
  double skip_begin = 0, skip_end = 0;  // global samples skipped
};

struct RunValid {
  long step = 0;
  double loss = 0, ppl = 0;
};

struct RunStraggler {  // the slowest rank of one straggler record
  long step = 0;
  int rank = 0, tp = 0, dp = 0, pp = 0;
  double slowdown = 1, compute_ms = 0;
};

struct RunMetrics {
  std::string dir, label;       // the folder as given; a short unique name for legends
  std::string model, layout;    // from config.yaml ("" when absent)
  std::vector<RunStep> steps;   // by step
  std::vector<RunValid> valid;  // by step
  std::vector<RunStraggler> stragglers;
  std::vector<RunRollback> rollbacks;
  // Throughput over the measured steps (as `report scaling`): 0 when too few steps.
  double tokens_per_s = 0, mfu = 0, step_ms = 0;
  long steps_measured = 0;
};

// Reads one run folder. Throws strata::Error naming the file and line at fault.
RunMetrics read_run(const std::string& dir, int skip_steps = -1);

// Gives every run a distinct label: the folder name, or more of its path when names repeat.
void label_runs(std::vector<RunMetrics>& runs);

// A run's step records as CSV (one header line): what the gnuplot script reads.
std::string run_steps_csv(const RunMetrics& run);
std::string run_valid_csv(const RunMetrics& run);
// The summary: one table row per run, then notes (gradient-norm spikes, stragglers).
std::string run_markdown(const std::vector<RunMetrics>& runs, const std::string& png_name);
// A gnuplot script drawing eight panels (loss and validation loss with the skipped steps marked,
// learning rate, gradient norm, tokens/s, MFU, memory, step and compute time, waits and the
// checkpoints' cost) with the runs overlaid, into
// `png_path` (pngcairo), from the CSV files `steps_csv[i]` / `valid_csv[i]` of run i.
std::string run_gnuplot(const std::vector<RunMetrics>& runs, const std::vector<std::string>& steps_csv,
                        const std::vector<std::string>& valid_csv, const std::string& png_path);

}  // namespace strata::plan
