// strata report run's reading of run folders and what it writes: the last record of a repeated
// step, validation and straggler records, distinct labels, the summary's numbers and notes, and
// a gnuplot script with eight panels.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "strata/core/error.hpp"
#include "strata/plan/run_report.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

// A run folder: config.yaml and metrics.jsonl with `steps` steps of loss 5 - 0.1 s (step 13 has a
// gradient-norm spike), validation every 5 steps, a straggler record at step 10, and steps 9-10
// recorded twice (a resumed run repeats them; the second record counts).
std::string make_run(const std::string& dir, int steps) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/config.yaml")
      << "model:\n  name: tiny\nparallel:\n  tp: 1\n  pp: 2\n  dp: 2\ntrain:\n  seq_len: 32\n";
  std::ofstream m(dir + "/metrics.jsonl");
  auto step = [&](int s, double loss) {
    m << "{\"step\": " << s << ", \"loss\": " << loss
      << ", \"lr\": 0.001, \"grad_norm\": " << (s == 13 ? 50.0 : 1.0)
      << ", \"tokens\": 256, \"tokens_per_s\": 2560, \"step_ms\": 100, \"tflops\": 0.01, \"mfu\": 0.25, "
         "\"mem_bytes\": 104857600, \"compute_ms\": 60, \"pipeline_wait_ms\": 20, \"dp_wait_ms\": 10, "
         "\"data_wait_ms\": 1}\n";
  };
  for (int s = 1; s <= steps; ++s) {
    step(s, 5 - 0.1 * s);
    if (s % 5 == 0)
      m << "{\"step\": " << s << ", \"valid_loss\": " << 5.05 - 0.1 * s
        << ", \"valid_ppl\": 1.0, \"valid_tokens\": 64}\n";
    if (s == 10) {
      m << "{\"step\": 10, \"stragglers\": {\"steps\": 10, \"ranks\": 4, \"compute_ms_median\": 60, "
           "\"compute_ms_max\": 90, "
           "\"step_ms_max\": 100, \"slowest\": [{\"rank\": 3, \"tp\": 0, \"dp\": 1, \"pp\": 1, \"step_ms\": "
           "100, "
           "\"compute_ms\": 90, \"wait_ms\": 10, \"slowdown\": 1.5}]}}\n";
      step(9, 9.0);  // the repeat after a resume: replaces the first record of step 9
      step(10, 5 - 0.1 * 10);
    }
  }
  return dir;
}

}  // namespace

TEST(RunReport, ReadsStepsValidationAndStragglersKeepingTheLastRecordOfAStep) {
  const std::string dir = make_run(testing::TempDir() + "/strata_run_report/a", 20);
  const plan::RunMetrics r = plan::read_run(dir);
  ASSERT_EQ(r.steps.size(), 20u);
  EXPECT_EQ(r.steps[8].step, 9);
  EXPECT_DOUBLE_EQ(r.steps[8].loss, 9.0);
  EXPECT_DOUBLE_EQ(r.steps[0].mem_mib, 100.0);
  EXPECT_DOUBLE_EQ(r.steps[0].pipeline_wait_ms, 20.0);
  ASSERT_EQ(r.valid.size(), 4u);
  EXPECT_EQ(r.valid[1].step, 10);
  ASSERT_EQ(r.stragglers.size(), 1u);
  EXPECT_EQ(r.stragglers[0].rank, 3);
  EXPECT_DOUBLE_EQ(r.stragglers[0].slowdown, 1.5);
  EXPECT_EQ(r.model, "tiny");
  EXPECT_EQ(r.layout, "tp1-pp2-dp2");
  EXPECT_DOUBLE_EQ(r.tokens_per_s, 2560.0);  // as report scaling: tokens over time of the measured steps
  EXPECT_EQ(r.steps_measured, 18);           // 20 steps, the first 2 warm-up
}

TEST(RunReport, TheSummaryHasOneRowPerRunAndNotesSpikesAndStragglers) {
  std::vector<plan::RunMetrics> runs = {
      plan::read_run(make_run(testing::TempDir() + "/strata_run_report/x/run", 20)),
      plan::read_run(make_run(testing::TempDir() + "/strata_run_report/y/run", 10))};
  plan::label_runs(runs);
  EXPECT_EQ(runs[0].label, "x/run");  // same folder names: the parent makes them distinct
  EXPECT_EQ(runs[1].label, "y/run");
  const std::string md = plan::run_markdown(runs, "r.png");
  EXPECT_NE(md.find("![loss, learning rate"), std::string::npos);
  // final loss: mean of steps 11-20 = 5 - 0.1 * 15.5; best validation at step 20.
  EXPECT_NE(md.find("| x/run | tiny  | tp1-pp2-dp2 | 1-20  | 5.12e+03 | 3.4500     | 3.0500 (step 20) |"),
            std::string::npos)
      << md;
  EXPECT_NE(
      md.find("| 2560     | 25.0% | 100.0     | 100            | 1.0 / 20.0 / 10.0               | 1 / 50 "),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("- x/run: 1 step with a gradient norm above 5x the median (1): steps 13"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("- x/run: slowest rank 3 (tp 0, dp 1, pp 1) in 1 of 1 straggler reports"),
            std::string::npos)
      << md;
  // CSV: a header and one line per step; validation separately.
  const std::string csv = plan::run_steps_csv(runs[1]);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 11);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "step,loss,lr,grad_norm,tokens_per_s,mfu,mem_mib,step_ms,compute_ms,data_wait_ms,pipeline_wait_"
            "ms,dp_wait_ms,"
            "ckpt_ms,save_wait_ms,skipped");
  EXPECT_EQ(plan::run_valid_csv(runs[1]), "step,valid_loss,valid_ppl\n5,4.55,1\n10,4.05,1\n");
}

TEST(RunReport, TheGnuplotScriptDrawsEightPanelsWithTheRunsOverlaid) {
  std::vector<plan::RunMetrics> runs = {
      plan::read_run(make_run(testing::TempDir() + "/strata_run_report/p", 10)),
      plan::read_run(make_run(testing::TempDir() + "/strata_run_report/q", 10))};
  runs[1].valid.clear();  // a run without validation: no validation series for it
  plan::label_runs(runs);
  const std::string gp =
      plan::run_gnuplot(runs, {"/d/1.csv", "/d/2.csv"}, {"/d/1.valid.csv", "/d/2.valid.csv"}, "/d/o.png");
  std::size_t plots = 0;
  for (std::size_t at = gp.find("\nplot "); at != std::string::npos; at = gp.find("\nplot ", at + 1)) ++plots;
  EXPECT_EQ(plots, 8u);
  for (const char* title : {"loss", "learning rate", "gradient norm", "throughput", "MFU", "peak memory",
                            "time per step", "waits per step"})
    EXPECT_NE(gp.find(std::string("set title '") + title), std::string::npos) << title;
  EXPECT_NE(gp.find("'/d/1.valid.csv'"), std::string::npos);
  EXPECT_EQ(gp.find("'/d/2.valid.csv'"), std::string::npos);
  EXPECT_NE(gp.find("set output '/d/o.png'"), std::string::npos);
  EXPECT_NE(gp.find("title 'q DP'"), std::string::npos);
}

TEST(RunReport, BadFoldersAndRecordsAreErrorsNamingTheFileAndLine) {
  EXPECT_THROW(plan::read_run(testing::TempDir() + "/strata_run_report/none"), Error);
  const std::string dir = make_run(testing::TempDir() + "/strata_run_report/bad", 3);
  std::ofstream(dir + "/metrics.jsonl", std::ios::app) << "{\"step\": 4, \"what\": 1}\n";
  try {
    plan::read_run(dir);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "metrics.jsonl:4: neither a step, a validation, a straggler nor a rollback record"),
              std::string::npos)
        << e.what();
  }
}

TEST(RunReport, SkippedStepsRollbacksAndCheckpointCostsAreReadAndSummarised) {
  // What the bad-step guard and the checkpoints write: a skipped step whose norm was NaN (null),
  // a skipped loss spike, a rollback record, and the checkpoint's cost on the training thread.
  const std::string dir = testing::TempDir() + "/strata_run_report/guard";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream m(dir + "/metrics.jsonl");
  auto step = [&](int s, const char* loss, const char* norm, int skipped, double ckpt) {
    m << "{\"step\": " << s << ", \"loss\": " << loss << ", \"lr\": 0.001, \"grad_norm\": " << norm
      << ", \"tokens\": 256, \"tokens_per_s\": 2560, \"step_ms\": 100, \"mfu\": 0.25, \"mem_bytes\": "
         "1048576, "
         "\"compute_ms\": 60, \"samples\": "
      << 8 * (s - 1) << ", \"skipped\": " << skipped << ", \"bad\": \"\", \"save_wait_ms\": " << ckpt / 2
      << ", \"ckpt_ms\": " << ckpt << "}\n";
  };
  step(1, "4.0", "1.0", 0, 0);
  step(2, "3.9", "1.0", 0, 40);
  step(3, "3.8", "null", 1, 0);   // NaN gradient: skipped
  step(4, "380.0", "1.0", 1, 0);  // loss spike: skipped
  m << "{\"step\": 2, \"rollback\": {\"from_step\": 6, \"bad_steps\": [4, 5, 6], \"skipped_samples\": [16, "
       "48], "
       "\"checkpoint\": \"c/step_00000002.h5\"}}\n";
  step(3, "3.7", "1.0", 0, 0);
  step(4, "3.6", "1.0", 0, 40);
  m.close();
  std::vector<plan::RunMetrics> runs = {plan::read_run(dir)};
  const plan::RunMetrics& r = runs[0];
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_FALSE(r.steps[2].skipped);  // the last record of step 3: after the rollback
  ASSERT_EQ(r.rollbacks.size(), 1u);
  EXPECT_EQ(r.rollbacks[0].to_step, 2);
  EXPECT_EQ(r.rollbacks[0].from_step, 6);
  EXPECT_DOUBLE_EQ(r.rollbacks[0].skip_end, 48);
  EXPECT_DOUBLE_EQ(r.steps[3].ckpt_ms, 40);
  EXPECT_DOUBLE_EQ(r.steps[3].save_wait_ms, 20);
  plan::label_runs(runs);
  const std::string md = plan::run_markdown(runs, "");
  EXPECT_NE(md.find("| 20.0 / 10.0 "), std::string::npos) << md;  // mean checkpoint ms per step / waiting
  EXPECT_NE(md.find("| 0 / 1 "), std::string::npos) << md;        // no skipped step left, one rollback
  EXPECT_NE(
      md.find("- guard: rolled back after step 6 to the checkpoint of step 2, skipping samples [16, 48)"),
      std::string::npos)
      << md;
  // A run whose final trajectory keeps skipped steps: counted, listed, out of the final loss.
  std::ofstream(dir + "/metrics.jsonl") << "";
  m.open(dir + "/metrics.jsonl");
  step(1, "4.0", "1.0", 0, 0);
  step(2, "3.8", "null", 1, 0);
  step(3, "3.6", "1.0", 0, 0);
  m.close();
  runs = {plan::read_run(dir)};
  EXPECT_TRUE(std::isnan(runs[0].steps[1].grad_norm));
  plan::label_runs(runs);
  const std::string md2 = plan::run_markdown(runs, "");
  EXPECT_NE(md2.find("| 3.8000 "), std::string::npos) << md2;  // (4.0 + 3.6) / 2
  EXPECT_NE(md2.find("| 1 / 0 "), std::string::npos) << md2;
  EXPECT_NE(md2.find("- guard: 1 bad step skipped (no update): steps 2"), std::string::npos) << md2;
  const std::string csv = plan::run_steps_csv(runs[0]);
  EXPECT_NE(csv.find("\n2,3.8,0.001,nan,"), std::string::npos) << csv;
  EXPECT_EQ(csv.substr(csv.size() - 2), "0\n");
}
