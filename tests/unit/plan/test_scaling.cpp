// `strata report scaling` on hand-made run folders: throughput as tokens over time, the
// efficiency arithmetic, the mode, and the CSV / Markdown / gnuplot outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "strata/core/error.hpp"
#include "strata/plan/scaling.hpp"

namespace strata::plan {
namespace {

namespace fs = std::filesystem;

struct Step {
  long step;
  double step_ms;
  double tflops = 0.01;
  double mfu = 0.1;
};

// A run folder as strata train and slurm/launch.sh leave it. tokens: tokens per step.
std::string make_run(const std::string& name, int ranks, int dp, double tokens,
                     const std::vector<Step>& steps, bool job_json = true, const std::string& scaling = "") {
  const fs::path dir = fs::path(testing::TempDir()) / "strata_scaling" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.yaml") << "model:\n  name: tiny\nparallel:\n  tp: 1\n  pp: 1\n  dp: " << dp
                                     << "\n  micro_batch_size: 4\ntrain:\n  seq_len: 64\n  steps: 10\n";
  std::ofstream m(dir / "metrics.jsonl");
  m.precision(17);  // exact rates, so the checks below can be tight
  for (const Step& s : steps)
    m << "{\"step\": " << s.step << ", \"loss\": 3.0, \"tokens_per_s\": " << tokens / (s.step_ms * 1e-3)
      << ", \"step_ms\": " << s.step_ms << ", \"tflops\": " << s.tflops << ", \"mfu\": " << s.mfu << "}\n";
  if (job_json)
    std::ofstream(dir / "job.json") << "{\"job_id\": \"7\", \"nodes\": 1, \"ranks\": " << ranks
                                    << ", \"tag\": \"t\", \"scaling\": \"" << scaling << "\"}\n";
  return dir.string();
}

// The cells of the Markdown table row whose first cell is `name`, trimmed.
std::vector<std::string> markdown_row(const std::string& md, const std::string& name) {
  std::istringstream in(md);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("| ")) continue;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    std::string cell;
    while (std::getline(row, cell, '|')) {
      const auto b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (!cells.empty() && cells[0] == name) return cells;
  }
  return {};
}

// Step 1 is a slow warm-up step that the default skip (a tenth, at least one) leaves out.
std::vector<Step> steady(double ms) { return {{1, 1000}, {2, ms}, {3, ms}, {4, ms}, {5, ms}}; }

TEST(PlanScaling, ThroughputIsTokensOverTimeAfterWarmup) {
  // Steps of 50 and 70 ms with 1024 tokens each: 4096 tokens in 240 ms = 17,066.7 tokens/s (the
  // mean of the per-step rates, 17,554, would overweight the fast steps). TFLOP/s and MFU are
  // weighted by time: (0.01 x 50 + 0.02 x 70) x 2 / 240 = 0.015833.
  const std::string dir =
      make_run("mixed", 2, 0, 1024,
               {{1, 1000}, {2, 50, 0.01, 0.1}, {3, 70, 0.02, 0.2}, {4, 50, 0.01, 0.1}, {5, 70, 0.02, 0.2}});
  const ScalingRun r = read_scaling_run(dir);
  EXPECT_EQ(r.steps_measured, 4);
  EXPECT_NEAR(r.tokens_per_s, 4096 / 0.240, 1e-6);
  EXPECT_NEAR(r.tflops_per_rank, 3.8 / 240, 1e-12);
  EXPECT_NEAR(r.mfu, 38.0 / 240, 1e-12);
  EXPECT_NEAR(r.step_ms, 60, 1e-9);
  EXPECT_NEAR(r.global_batch, 1024 / 64.0, 1e-9);
  EXPECT_EQ(r.ranks, 2);
  EXPECT_EQ(r.dp, 2);  // derived: ranks / (tp x pp)
  EXPECT_EQ(r.layout(), "tp1-pp1-dp2");
  EXPECT_EQ(r.name, "mixed");
  // --skip 0 keeps the warm-up step: 5120 tokens in 1.24 s.
  EXPECT_NEAR(read_scaling_run(dir, 0).tokens_per_s, 5120 / 1.240, 1e-6);
}

TEST(PlanScaling, RepeatedStepCountsOnceWithItsLastRecord) {
  // A run that resumed from a checkpoint logs steps 3 and 4 again; the first records (999 ms)
  // are the interrupted attempt.
  const std::string dir = make_run("resumed", 1, 0, 1024,
                                   {{1, 1000}, {2, 100}, {3, 999}, {4, 999}, {3, 100}, {4, 100}, {5, 100}});
  const ScalingRun r = read_scaling_run(dir);
  EXPECT_EQ(r.steps_measured, 4);
  EXPECT_NEAR(r.tokens_per_s, 10240, 1e-6);
}

TEST(PlanScaling, StrongScalingEfficiencyAgainstTheSmallestRun) {
  // Fixed global batch of 1024 tokens: 1 rank 100 ms, 2 ranks 60 ms, 4 ranks 40 ms.
  // Speedup 100/60 = 1.667 on 2x the ranks: efficiency 0.8333; 100/40 = 2.5 on 4x: 0.625.
  std::vector<ScalingRun> runs = {read_scaling_run(make_run("s4", 4, 0, 1024, steady(40))),
                                  read_scaling_run(make_run("s1", 1, 0, 1024, steady(100))),
                                  read_scaling_run(make_run("s2", 2, 0, 1024, steady(60)))};
  const ScalingReport rep = make_scaling_report(runs);
  ASSERT_EQ(rep.rows.size(), 3u);
  EXPECT_EQ(rep.mode, "strong");
  EXPECT_EQ(rep.rows[0].run.ranks, 1);
  EXPECT_DOUBLE_EQ(rep.rows[0].efficiency, 1.0);
  EXPECT_NEAR(rep.rows[1].speedup, 100.0 / 60, 1e-9);
  EXPECT_NEAR(rep.rows[1].efficiency, 100.0 / 60 / 2, 1e-9);
  EXPECT_NEAR(rep.rows[2].speedup, 2.5, 1e-9);
  EXPECT_NEAR(rep.rows[2].efficiency, 0.625, 1e-9);

  // The CSV carries the same numbers; the ideal throughput is the baseline's times the ranks.
  std::istringstream csv(scaling_csv(rep));
  std::string header, line;
  std::getline(csv, header);
  // Columns 1-18 keep their places; the communication share and the predictions follow (empty:
  // no waits in these metrics, no cluster file for predictions).
  EXPECT_EQ(header,
            "run,tag,nodes,ranks,layout,tp,pp,dp,seq_len,global_batch,steps,step_ms,tokens_per_s,"
            "ideal_tokens_per_s,tflops_per_rank,mfu,speedup,efficiency,comm_share,pred_step_ms,"
            "pred_tokens_per_s,pred_mfu,pred_comm_share,pred_speedup,pred_efficiency,pred_memory_gib");
  std::getline(csv, line);
  EXPECT_EQ(line,
            "s1,t,1,1,tp1-pp1-dp1,1,1,1,64,16,4,100.000,10240.0,10240.0,0.01,0.10000,1.0000,1.0000,,,,,,,,");
  std::getline(csv, line);
  EXPECT_EQ(line,
            "s2,t,1,2,tp1-pp1-dp2,1,1,2,64,16,4,60.000,17066.7,20480.0,0.01,0.10000,1.6667,0.8333,,,,,,,,");
  std::getline(csv, line);
  EXPECT_EQ(line,
            "s4,t,1,4,tp1-pp1-dp4,1,1,4,64,16,4,40.000,25600.0,40960.0,0.01,0.10000,2.5000,0.6250,,,,,,,,");

  const std::string md = scaling_markdown(rep);
  EXPECT_NE(md.find("## Scaling study: strong scaling"), std::string::npos) << md;
  EXPECT_EQ(markdown_row(md, "s2"),
            (std::vector<std::string>{"s2", "1", "2", "tp1-pp1-dp2", "16", "60.0", "17067", "0.01", "10.0%",
                                      "n/a", "1.67x", "83.3%"}))
      << md;
  EXPECT_EQ(markdown_row(md, "s4").back(), "62.5%") << md;
}

TEST(PlanScaling, WeakScalingKeepsTheStepTimeAsEfficiency) {
  // Per-rank batch fixed: 2 ranks process 2048 tokens a step. At 125 ms against the 1-rank run's
  // 100 ms the efficiency is t0 / t = 0.8.
  const ScalingReport rep = make_scaling_report({read_scaling_run(make_run("w1", 1, 0, 1024, steady(100))),
                                                 read_scaling_run(make_run("w2", 2, 0, 2048, steady(125)))});
  EXPECT_EQ(rep.mode, "weak");
  EXPECT_NEAR(rep.rows[1].efficiency, 0.8, 1e-9);
  EXPECT_NEAR(rep.rows[1].run.global_batch, 32, 1e-9);
}

TEST(PlanScaling, ModeFromJobJsonWhenAllRunsAgree) {
  const ScalingReport rep =
      make_scaling_report({read_scaling_run(make_run("j1", 1, 0, 1024, steady(100), true, "weak")),
                           read_scaling_run(make_run("j2", 2, 0, 1024, steady(100), true, "weak"))});
  EXPECT_EQ(rep.mode, "weak");
}

TEST(PlanScaling, RanksWithoutJobJsonComeFromTheLayout) {
  EXPECT_EQ(read_scaling_run(make_run("nojob", 0, 4, 1024, steady(100), false)).ranks, 4);
  const std::string dir = make_run("nojob_dp0", 0, 0, 1024, steady(100), false);
  try {
    read_scaling_run(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot tell the number of ranks"), std::string::npos) << e.what();
  }
}

TEST(PlanScaling, MissingFilesAreNamed) {
  const fs::path dir = fs::path(testing::TempDir()) / "strata_scaling" / "empty";
  fs::create_directories(dir);
  try {
    read_scaling_run(dir.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.yaml' is missing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_scaling_report({}), Error);
}

TEST(PlanScaling, MfuOfAStepWithoutOneIsNotAveraged) {
  // A step with MFU 0 (not reported: the peak was unknown or exceeded) makes the run's MFU
  // unknown rather than a diluted average; a null MFU reads the same.
  const std::string dir =
      make_run("nomfu", 1, 0, 1024, {{1, 1000}, {2, 100, 0.01, 0.1}, {3, 100, 0.01, 0.0}});
  EXPECT_EQ(read_scaling_run(dir).mfu, 0.0);
  const ScalingReport rep = make_scaling_report({read_scaling_run(dir)});
  EXPECT_EQ(markdown_row(scaling_markdown(rep), "nomfu")[8], "n/a");
}

TEST(PlanScaling, FinishedMeansEveryPlannedStepAndStatusZero) {
  // config.yaml plans 10 steps (make_run); 5 recorded.
  ScalingRun r = read_scaling_run(make_run("short", 1, 0, 1024, steady(100)));
  EXPECT_EQ(r.steps_planned, 10);
  EXPECT_EQ(r.last_step, 5);
  EXPECT_FALSE(r.finished());
  r.last_step = 10;
  EXPECT_TRUE(r.finished());  // no exit code: judged by the steps
  r.exit_code = 0;
  EXPECT_TRUE(r.finished());
  r.exit_code = 1;
  EXPECT_FALSE(r.finished());
}

TEST(PlanScaling, GnuplotScriptDrawsThroughputAndEfficiencyAgainstRanksOnOneNode) {
  const ScalingReport rep = make_scaling_report({read_scaling_run(make_run("g1", 1, 0, 1024, steady(100))),
                                                 read_scaling_run(make_run("g2", 2, 0, 1024, steady(60)))});
  const std::string gp = scaling_gnuplot(rep, "/tmp/it's.csv", "/tmp/out.png");
  EXPECT_NE(gp.find("set terminal pngcairo"), std::string::npos);
  EXPECT_NE(gp.find("set output '/tmp/out.png'"), std::string::npos);
  EXPECT_NE(gp.find("'/tmp/it''s.csv' skip 1 using 4:13"), std::string::npos) << gp;  // ranks vs tokens/s
  EXPECT_NE(gp.find("using 4:(100*$18)"), std::string::npos) << gp;                   // efficiency in %
  EXPECT_NE(gp.find("set xlabel 'ranks'"), std::string::npos);
}

}  // namespace
}  // namespace strata::plan
