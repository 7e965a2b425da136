// Straggler ranking (rank_stragglers): ranks compared with their own pipeline stage, the report
// line for metrics.jsonl and the log line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "strata/train/stragglers.hpp"

using namespace strata;
using namespace strata::train;

namespace {
// tp2 x pp2 x dp2: stage 0 (ranks 0-3) computes 10 ms, stage 1 (4-7) 20 ms (it holds the output
// layer); rank 5 is slow: 30 ms.
std::vector<RankTimes> eight_ranks(const comm::GridShape& s) {
  std::vector<RankTimes> all;
  for (int r = 0; r < 8; ++r) {
    RankTimes t;
    t.global_rank = r;
    t.coord = comm::coord_of(s, r);
    t.compute_ms = r < 4 ? 10 : r == 5 ? 30 : 20;
    t.step_ms = 50;
    t.wait_ms = 50 - t.compute_ms;
    all.push_back(t);
  }
  return all;
}
}  // namespace

TEST(Stragglers, TheSlowRankIsFoundAgainstItsOwnStageNotTheSlowerStage) {
  const comm::GridShape s{2, 2, 2};
  const StragglerReport r = rank_stragglers(eight_ranks(s), s, 3);
  ASSERT_EQ(r.slowest.size(), 3u);
  EXPECT_EQ(r.slowest[0].global_rank, 5);
  EXPECT_DOUBLE_EQ(r.slowest[0].slowdown, 1.5);  // 30 / median(20, 30, 20, 20) = 30 / 20
  EXPECT_EQ(r.slowest[0].coord.tp_rank, 1);
  EXPECT_EQ(r.slowest[0].coord.dp_rank, 0);
  EXPECT_EQ(r.slowest[0].coord.pp_rank, 1);
  // Everyone else is at their stage's median: ties in rank order, stage 0 included.
  EXPECT_EQ(r.slowest[1].global_rank, 0);
  EXPECT_DOUBLE_EQ(r.slowest[1].slowdown, 1.0);
  EXPECT_EQ(r.slowest[2].global_rank, 1);
  EXPECT_DOUBLE_EQ(r.compute_ms_median, 15.0);  // of 10 10 10 10 20 20 20 30
  EXPECT_DOUBLE_EQ(r.compute_ms_max, 30.0);
}

TEST(Stragglers, TheReportIsOneMetricsLineAndOneLogLine) {
  const comm::GridShape s{2, 2, 2};
  StragglerReport r = rank_stragglers(eight_ranks(s), s, 2);
  r.step = 100;
  r.steps = 50;
  const auto j = nlohmann::json::parse(r.json());
  EXPECT_EQ(r.json().rfind("{\"step\": 100, ", 0),
            0u);  // a resumed run's metrics keep_until() reads this prefix
  EXPECT_EQ(j.at("stragglers").at("ranks").get<int>(), 8);
  EXPECT_EQ(j.at("stragglers").at("steps").get<int>(), 50);
  ASSERT_EQ(j.at("stragglers").at("slowest").size(), 2u);
  EXPECT_EQ(j.at("stragglers").at("slowest")[0].at("rank").get<int>(), 5);
  EXPECT_EQ(j.at("stragglers").at("slowest")[0].at("pp").get<int>(), 1);
  EXPECT_DOUBLE_EQ(j.at("stragglers").at("slowest")[0].at("slowdown").get<double>(), 1.5);
  const std::string line = r.log_line();
  EXPECT_NE(line.find("stragglers over steps 51-100"), std::string::npos) << line;
  EXPECT_NE(line.find("rank 5 (tp 1/2, dp 0/2, pp 1/2) compute 30.0 ms = 1.50x its stage's median"),
            std::string::npos)
      << line;
}

TEST(Stragglers, OneRankAndTopLargerThanTheJobAreFine) {
  const comm::GridShape s{1, 1, 1};
  RankTimes t;
  t.compute_ms = 7;
  const StragglerReport r = rank_stragglers({t}, s, 5);
  ASSERT_EQ(r.slowest.size(), 1u);
  EXPECT_DOUBLE_EQ(r.slowest[0].slowdown, 1.0);
  EXPECT_TRUE(rank_stragglers({}, s, 3).slowest.empty());
}
