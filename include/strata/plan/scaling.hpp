// Scaling studies from measured runs (`strata report scaling RUN_DIR...`): one row per run
// folder, from what the run wrote there:
//   metrics.jsonl  one JSON object per step (tokens_per_s, step_ms, tflops, mfu; train/trainer.hpp)
//   config.yaml    the job config (parallel.tp/pp/dp, train.seq_len, model.name)
//   job.json       the allocation, written by slurm/launch.sh (nodes, ranks, tag, scaling mode);
//                  without it: one node, ranks = tp x pp x dp (parallel.dp must then be set)
//
// Throughput of a run = tokens of the measured steps / their total time (the first `skip`
// steps are warm-up and left out); TFLOP/s per rank and MFU are averaged weighted by step time,
// i.e. total FLOPs over total time. A step logged twice (a run that resumed and repeated it)
// counts once, its last record.
//
// Scaling efficiency against the run with the fewest ranks (R0 ranks, X0 tokens/s):
//   E = (X / X0) / (R / R0)
// which is the usual definition in both modes: strong scaling (fixed global batch B, step
// time t): X = B T / t, so E = t0 / ((R/R0) t); weak scaling (B grows with R): X = (R/R0) B0 T / t,
// so E = t0 / t.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace strata::plan {

struct ScalingRun {
  std::string dir;           // the run folder as given
  std::string name;          // its last path component
  std::string tag, scaling;  // from job.json ("" when absent)
  int nodes = 1, ranks = 1;
  int tp = 1, pp = 1, dp = 1;
  int seq_len = 0;
  double global_batch = 0;   // sequences per step, from the measured tokens per step
  long steps_measured = 0;
  double step_ms = 0;        // mean over the measured steps
  double tokens_per_s = 0;
  double tflops_per_rank = 0;
  double mfu = 0;
  std::string layout() const;  // "tp2-pp2-dp2"
};

// One step's record in metrics.jsonl (train/trainer.hpp writes them).
struct StepRecord {
  double tokens_per_s = 0, step_ms = 0, tflops = 0, mfu = 0;
  double cpu_ms = -1;        // CPU time of all ranks during the step; -1 when not recorded
};
// The last record of each step number of a metrics.jsonl (validation and straggler records are
// skipped).
// Throws naming the file and line of a record that is not a step.
std::map<long, StepRecord> read_step_metrics(const std::string& path);

// Reads one run folder. Throws strata::Error naming the file and what is missing.
ScalingRun read_scaling_run(const std::string& dir, int skip_steps = -1);  // -1: max(1, steps/10), 0 for < 3 steps

struct ScalingRow {
  ScalingRun run;
  double speedup = 1;     // X / X0
  double efficiency = 1;  // (X / X0) / (R / R0)
};

struct ScalingReport {
  std::string mode;       // "strong" (same global batch everywhere), "weak" (grows with ranks), "mixed"
  std::vector<ScalingRow> rows;  // by ranks, then folder name; rows[0] is the baseline
};

// Orders the runs and computes speedup and efficiency against the first one. Throws on an
// empty list. The mode comes from job.json's `scaling` when every run has the same one, else
// from the global batch sizes.
ScalingReport make_scaling_report(std::vector<ScalingRun> runs);

std::string scaling_csv(const ScalingReport& report);       // raw numbers, one header line
std::string scaling_markdown(const ScalingReport& report);  // a titled Markdown table
// A gnuplot script that reads the CSV and draws tokens/s (measured and ideal) and the scaling
// efficiency against nodes (or ranks, when all runs share one node) into a PNG (pngcairo).
std::string scaling_gnuplot(const ScalingReport& report, const std::string& csv_path, const std::string& png_path);

}  // namespace strata::plan
