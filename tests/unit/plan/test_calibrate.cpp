// Calibration: the fit recovers constants that generated the runs, leave-one-out errors are
// those of refits without each run, repeats merge, and the calibrated cluster file keeps its
// comments, sets the fitted keys and drops their assumption ranges.
#include <gtest/gtest.h>

#include <cmath>

#include "plan_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/calibrate.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {
namespace {

// Runs whose "measured" step is the model's own prediction on `truth`: single-rank CPU runs of
// different widths, lengths and recomputation, and two 2-rank runs.
std::vector<CalibrationRun> synthetic_runs(const config::ClusterConfig& truth) {
  std::vector<CalibrationRun> runs;
  const int widths[] = {64, 128, 256, 512, 256, 256, 128};
  const int seqs[] = {128, 128, 128, 64, 512, 1024, 256};
  for (int i = 0; i < 7; ++i) {
    CalibrationRun r;
    config::ModelConfig m = test::gpt(4, widths[i], 4, 2048, seqs[i]);
    r.workload = Workload::of(m, seqs[i]);
    r.layout.precision = config::Precision::fp32, r.layout.micro_batch = 2, r.layout.micro_batches = 2;
    r.layout.zero = 0;
    r.layout.recompute = i == 5 ? Recompute::full : Recompute::none;
    r.name = "run" + std::to_string(i);
    runs.push_back(r);
  }
  for (const char* layout : {"tp2-pp1-dp1-mb2-z0-sp", "tp1-pp2-dp1-mb2-z0"}) {
    CalibrationRun r;
    r.workload = Workload::of(test::gpt(4, 256, 4, 2048, 128), 128);
    r.layout = parse_layout(layout, 2, 4, config::Precision::fp32);
    r.ranks_per_node = 2;
    r.name = layout;
    runs.push_back(r);
  }
  for (CalibrationRun& r : runs) {
    r.measured_s = predict_run_s(r, truth);
    r.samples_s = {r.measured_s};
  }
  return runs;
}

TEST(PlanCalibrate, FitRecoversTheConstantsThatMadeTheRuns) {
  config::ClusterConfig truth = test::cluster("local");
  truth.sustained_fraction = 0.37, truth.attention_fraction = 0.21, truth.elementwise_fraction = 0.6;
  truth.small_gemm_width = 48;
  const std::vector<CalibrationRun> runs = synthetic_runs(truth);
  config::ClusterConfig start = truth;
  start.sustained_fraction = 0.8, start.attention_fraction = 0.5, start.elementwise_fraction = 1.0;
  start.small_gemm_width = 10;
  const Calibration c = calibrate(
      start, runs, {"sustained_fraction", "small_gemm_width", "attention_fraction", "elementwise_fraction"});
  EXPECT_NEAR(c.cluster.sustained_fraction, 0.37, 1e-3);
  EXPECT_NEAR(c.cluster.small_gemm_width, 48, 0.5);
  EXPECT_NEAR(c.cluster.attention_fraction, 0.21, 1e-3);
  EXPECT_NEAR(c.cluster.elementwise_fraction, 0.6, 1e-3);
  EXPECT_LT(c.max_abs_residual, 1e-4);
  EXPECT_LT(c.max_abs_loo, 1e-3);  // exact data: every refit finds the same constants
  EXPECT_EQ(c.rows.size(), runs.size());
  const std::string report = calibration_report(c);
  EXPECT_NE(report.find("leave-one-out errors"), std::string::npos) << report;
}

// Leave-one-out: a run that disagrees with the others fits badly out of sample, not in sample.
TEST(PlanCalibrate, LeaveOneOutPredictsEachRunFromTheOthers) {
  const config::ClusterConfig truth = test::cluster("local");
  std::vector<CalibrationRun> runs = synthetic_runs(truth);
  runs[2].measured_s *= 1.5;  // an outlier
  const Calibration c = calibrate(truth, runs, {"sustained_fraction"});
  EXPECT_GT(std::fabs(c.rows[2].loo_error()), std::fabs(c.rows[2].residual()));
  EXPECT_LT(c.rows[2].loo_error(), -0.3);  // the others say ~1/1.5 of it
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (i != 2) {
      EXPECT_GT(c.rows[i].loo_error(), c.rows[i].residual() - 1e-9);  // without the outlier: faster
    }
}

TEST(PlanCalibrate, RepeatsOfOneConfigurationMerge) {
  std::vector<CalibrationRun> runs = synthetic_runs(test::cluster("local"));
  CalibrationRun a = runs[0], b = runs[0], c = runs[1];
  a.key = b.key = "same", c.key = "other";
  a.samples_s = {1.0, 1.2}, a.measured_s = 1.1;
  b.samples_s = {1.4, 1.6}, b.measured_s = 1.5;
  const std::vector<CalibrationRun> merged = merge_repeats({a, c, b});
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0].repeats, 2);
  EXPECT_NEAR(merged[0].measured_s, 1.3, 1e-12);            // median of the four steps
  EXPECT_NEAR(merged[0].spread, (1.5 - 1.1) / 1.3, 1e-12);  // of the repeats' medians
  EXPECT_EQ(merged[1].repeats, 1);
}

TEST(PlanCalibrate, CalibratedFileSetsTheKeysAndDropsTheirRanges) {
  const config::ClusterConfig truth = test::cluster("local");
  const Calibration c = calibrate(truth, synthetic_runs(truth), {"sustained_fraction"}, false);
  const std::string text =
      "# a comment that stays\nname: x\nsustained_fraction: 0.5   # old note\nsustained_fraction_range: "
      "[0.4, 0.7]\n"
      "other: 1\n";
  const std::string out = calibrated_cluster_text(text, c, "runs of today");
  EXPECT_NE(out.find("# a comment that stays\n"), std::string::npos) << out;
  EXPECT_NE(out.find("sustained_fraction: " + fmt("%.4g", c.after[0])), std::string::npos) << out;
  EXPECT_EQ(out.find("sustained_fraction_range"), std::string::npos) << out;
  EXPECT_EQ(out.find("old note"), std::string::npos) << out;
  EXPECT_NE(out.find("calibration: \"fitted sustained_fraction to 9 runs"), std::string::npos) << out;
  EXPECT_NE(out.find("runs of today"), std::string::npos) << out;
}

TEST(PlanCalibrate, BadRequestsSayWhy) {
  const config::ClusterConfig local = test::cluster("local");
  const std::vector<CalibrationRun> runs = synthetic_runs(local);
  EXPECT_THROW(calibrate(local, runs, {"peak_tflops_fp32"}), Error);
  EXPECT_THROW(calibrate(local, {runs[0]}, {"sustained_fraction", "attention_fraction"}), Error);
  EXPECT_THROW(calibrate(local, runs, {}), Error);
}

}  // namespace
}  // namespace strata::plan
