// Calibration: fit a cluster file's efficiencies to measured steps, and say how well the fit
// predicts runs it did not see.
//
// A run is a model, a layout and a measured step time (a site's own `strata train` run folder,
// or a published measurement). The fit chooses the values of the named cluster constants
// (sustained_fraction, small_gemm_width, attention_fraction, elementwise_fraction,
// overlap_efficiency; for a CPU node, whose "links" are MPI's shared-memory copies, also
// intra_node_gb_per_s and intra_node_alpha_us) that minimise the sum over runs of log(predicted /
// measured)^2, the relative error in both directions, by Levenberg-Marquardt on the logarithms of the
// constants (fractions stay in (0, 1]). Everything else in the cluster file (peak, bandwidths, links) is a
// datasheet figure and is kept. The report gives every run's residual under the full fit and its
// leave-one-out error: the error of a fit to all the other runs, i.e. the error to expect on a
// run like it that the fit never saw.
//
// Run folders (`strata plan --calibrate RUN_DIR...`): config.yaml (the job: model, parallel.*,
// train.seq_len, hardware.threads), metrics.jsonl (per step: step_ms; cpu_ms when the trainer
// records it), job.json when launched by slurm/launch.sh (nodes, ranks). The measured step is the
// median over the steps after warm-up (the first max(1, steps/10); all with fewer than 3 steps).
// TimeBase::cpu uses the CPU time of all ranks per step divided by the cores they could use
// (min(ranks x threads, the node's slots)): what the step takes on an otherwise idle machine,
// for machines shared with other jobs.
#pragma once
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"
#include "strata/plan/layout.hpp"

namespace strata::plan {

struct CalibrationRun {
  std::string name;
  Workload workload;
  Layout layout;
  int ranks_per_node = 1;         // > the cluster's slots per node: an oversubscribed CPU node
  double measured_s = 0;          // the step time the fit aims at: the median of `samples_s`
  double spread = 0;              // (max - min) / median of the repeats' own medians (0 for one run)
  std::vector<double> samples_s;  // the measured steps (after warm-up) of every repeat
  int repeats = 1;
  std::string key;  // what makes two run folders repeats of one run (model, layout, ...)
};

enum class TimeBase { wall, cpu };

// Reads one run folder (see above). Throws strata::Error naming the file and the missing key.
CalibrationRun read_calibration_run(const std::string& dir, const config::ClusterConfig& cluster,
                                    TimeBase base);

// Run folders of the same configuration (same key) become one run: the median over all their
// measured steps, with the spread of the repeats. Order: first appearance.
std::vector<CalibrationRun> merge_repeats(const std::vector<CalibrationRun>& runs);

// The runs whose repeats agree: those with more than one repeat and a spread above `max_spread`
// are left out (their names and spreads appended to `dropped`, "cal-r2-tp2 (49.9%)").
std::vector<CalibrationRun> reproducible_runs(const std::vector<CalibrationRun>& runs, double max_spread,
                                              std::vector<std::string>* dropped = nullptr);

// The cluster a run is predicted on: `cluster` shared by the run's ranks per node (share_node).
double predict_run_s(const CalibrationRun& run, const config::ClusterConfig& cluster);

struct CalibrationRow {
  std::string name;
  int repeats = 1;
  double spread = 0;
  double measured_s = 0;
  double fitted_s = 0;  // prediction with the fit to all runs
  double loo_s = 0;     // prediction with the fit to the other runs (0 when there is one run)
  double residual() const { return fitted_s / measured_s - 1; }
  double loo_error() const { return loo_s / measured_s - 1; }
};

struct Calibration {
  config::ClusterConfig cluster;      // the input with the fitted constants
  std::vector<std::string> keys;      // what was fitted
  std::vector<double> before, after;  // their values before and after
  std::vector<CalibrationRow> rows;
  double rms_residual = 0, mean_abs_residual = 0, max_abs_residual = 0;
  double mean_abs_loo = 0, max_abs_loo = 0;
};

// The constants the fit can set, in schema order.
const std::vector<std::string>& calibratable_keys();

// Fits `keys` to `runs`; with `leave_one_out` also refits once per run without it. Throws when a
// key is unknown or there are fewer runs than keys.
Calibration calibrate(const config::ClusterConfig& cluster, const std::vector<CalibrationRun>& runs,
                      const std::vector<std::string>& keys, bool leave_one_out = true);

// The report: fitted values, every run's measured and predicted step, residual and leave-one-out
// error, and their summaries.
std::string calibration_report(const Calibration& c);

// The cluster file's text with the fitted keys set (a key's line keeps its comment, replaced by
// `note` when given; missing keys are appended) and the calibration key describing the fit.
std::string calibrated_cluster_text(const std::string& original_text, const Calibration& c,
                                    const std::string& note);

}  // namespace strata::plan
