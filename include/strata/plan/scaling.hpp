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
// Finished runs only: a run folder is reported when its config.yaml and metrics.jsonl load, it
// recorded its last step (train.steps of config.yaml) and, where job.json has the job's exit
// code (slurm/launch.sh writes it when the job step ends), that code is 0. Every other folder,
// and every point of a study that was refused before submission or never started, is listed
// as failed with its reason: the first error line of its log (job.json's `log`) when there is one.
//
// Communication share of a step (measured) = (pipeline_wait_ms + dp_wait_ms) / step_ms: the time
// rank 0 waited on pipeline neighbours (transfers and the bubble) and on the data-parallel
// reduction and parameter gathering; tensor-parallel collectives run inside the layers and count
// as compute. The prediction next to it is PointCheck::predicted_comm_share() (plan/study.hpp).
//
// With a cluster file (--cluster, or the study's), each run gets the planner's prediction for
// its own layout at its own size: step time, tokens/s, MFU and communication share, and the
// predicted speedup and efficiency against the predicted baseline.
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

#include "strata/config/cluster.hpp"

namespace strata::plan {

struct ScalingRun {
  std::string dir;           // the run folder as given
  std::string name;          // its last path component
  std::string tag, scaling;  // from job.json ("" when absent)
  int nodes = 1, ranks = 1;
  int ranks_per_node = 1;  // job.json's, else ceil(ranks / nodes)
  int tp = 1, pp = 1, dp = 1;
  int seq_len = 0;
  double global_batch = 0;  // sequences per step, from the measured tokens per step
  long steps_measured = 0;
  double step_ms = 0;  // mean over the measured steps
  double tokens_per_s = 0;
  double tflops_per_rank = 0;
  double mfu = 0;              // 0 when any measured step has no MFU (peak unknown or exceeded)
  double comm_share = -1;      // measured (see above); -1 when metrics.jsonl lacks the waits
  long last_step = 0;          // the highest step recorded
  long steps_planned = 0;      // train.steps of config.yaml; 0 when absent
  int exit_code = -1;          // job.json's exit_code; -1 when absent (job still running, or older run)
  std::string log;             // job.json's log: the job's output file; "" when unknown
  std::string layout() const;  // "tp2-pp2-dp2"
  // Recorded its last step and (when known) ended with status 0.
  bool finished() const { return (steps_planned <= 0 || last_step >= steps_planned) && exit_code <= 0; }
};

// One step's record in metrics.jsonl (train/trainer.hpp writes them).
struct StepRecord {
  double tokens_per_s = 0, step_ms = 0, tflops = 0, mfu = 0;
  double cpu_ms = -1;   // CPU time of all ranks during the step; -1 when not recorded
  double wait_ms = -1;  // pipeline_wait_ms + dp_wait_ms; -1 when not recorded
};
// The last record of each step number of a metrics.jsonl (validation and straggler records are
// skipped).
// Throws naming the file and line of a record that is not a step.
std::map<long, StepRecord> read_step_metrics(const std::string& path);

// Reads one run folder. Throws strata::Error naming the file and what is missing.
ScalingRun read_scaling_run(const std::string& dir,
                            int skip_steps = -1);  // -1: max(1, steps/10), 0 for < 3 steps

struct ScalingPrediction {
  bool valid = false;
  std::string note;  // why there is none, or the planner's refusal
  double step_ms = 0, tokens_per_s = 0, mfu = 0, comm_share = 0, memory_gib = 0;
};

struct ScalingRow {
  ScalingRun run;
  double speedup = 1;     // X / X0
  double efficiency = 1;  // (X / X0) / (R / R0)
  ScalingPrediction predicted;
  double predicted_speedup = 0, predicted_efficiency = 0;  // against the baseline's prediction
};

// A point that produced no reportable run.
struct FailedPoint {
  std::string name;  // the point or run folder
  int nodes = 0, ranks = 0;
  std::string status;  // refused | submit failed | failed | not finished | no run
  std::string reason;
};

struct ScalingReport {
  std::string mode;  // "strong" (same global batch everywhere), "weak" (grows with ranks), "mixed"
  std::vector<ScalingRow> rows;  // by ranks, then folder name; rows[0] is the baseline
  std::vector<FailedPoint> failed;
  std::string cluster;  // the cluster file of the predictions; "" without
  bool has_predictions() const;
};

// The first error line of a job's log ("strata: error ...", else "srun: error ...", else any
// line with "error"), trimmed to 300 characters; "" when none or the log is unreadable.
std::string first_error_line(const std::string& log_path);

struct ReportOptions {
  int skip = -1;        // warm-up steps (read_scaling_run)
  std::string cluster;  // cluster file (name or path) for the predictions; "" for none
};

// Every folder read; finished runs become rows, the others FailedPoints. Throws when no run
// finished (the message lists every failure).
ScalingReport build_scaling_report(const std::vector<std::string>& run_dirs, const ReportOptions& options);

// A study folder written by slurm/scaling_study.sh: its study.jsonl lists every point (refused,
// submitted with its job id, run folder and log, or failed at submission) and the cluster file
// it was checked against (used for the predictions unless options.cluster names another).
ScalingReport build_study_report(const std::string& study_dir, ReportOptions options);

// Orders the runs and computes speedup and efficiency (measured and, where predicted, predicted)
// against the first one. Throws on an empty list. The mode comes from job.json's `scaling` when every run has
// the same one, else from the global batch sizes.
ScalingReport make_scaling_report(std::vector<ScalingRun> runs);

// Predicted figures for a run: check_point() of its config.yaml at its ranks and ranks per node.
ScalingPrediction predict_run(const ScalingRun& run, const config::ClusterConfig& cluster);

std::string scaling_csv(const ScalingReport& report);  // raw numbers of the finished runs, one header line
std::string scaling_markdown(const ScalingReport& report);  // a titled Markdown table, then the failed points
// A gnuplot script that reads the CSV and draws tokens/s (measured, predicted and ideal) and the
// scaling efficiency (measured and predicted) against nodes (or ranks, when all runs share one
// node) into a PNG (pngcairo).
std::string scaling_gnuplot(const ScalingReport& report, const std::string& csv_path,
                            const std::string& png_path);

}  // namespace strata::plan
