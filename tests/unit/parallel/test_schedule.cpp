#include <gtest/gtest.h>

#include <set>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/parallel/schedule.hpp"

using namespace strata;
using config::PipelineSchedule;
using parallel::build_schedule;
using parallel::to_string;

TEST(Schedule, GpipeRunsAllForwardsThenAllBackwards) {
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::gpipe, 2, 0, 3, 1)), "F0 F1 F2 B0 B1 B2");
}

TEST(Schedule, OneFOneBWarmupIsPpMinusStageMinusOne) {
  // pp = 4, m = 6: stage 0 warms up with 3 forwards, the last stage with none.
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::one_f_one_b, 4, 0, 6, 1)),
            "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::one_f_one_b, 4, 2, 6, 1)),
            "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::one_f_one_b, 4, 3, 6, 1)),
            "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  // warm-up capped by the number of micro-batches
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::one_f_one_b, 4, 0, 2, 1)), "F0 F1 B0 B1");
  // one stage: forward and backward alternate, one micro-batch in flight
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::one_f_one_b, 1, 0, 3, 1)), "F0 B0 F1 B1 F2 B2");
}

TEST(Schedule, InFlightMicroBatchesBoundMemory) {
  for (int pp : {1, 2, 4, 8})
    for (int stage = 0; stage < pp; ++stage)
      for (int m : {1, 3, 8, 16}) {
        SCOPED_TRACE(m);
        EXPECT_EQ(parallel::max_in_flight(build_schedule(PipelineSchedule::one_f_one_b, pp, stage, m, 1), 0),
                  std::min(pp - stage, m));
        EXPECT_EQ(parallel::max_in_flight(build_schedule(PipelineSchedule::gpipe, pp, stage, m, 1), 0), m);
      }
}

TEST(Schedule, InterleavedVisitsEveryMicroBatchOnEveryChunkOnceInEachDirection) {
  for (int pp : {2, 4})
    for (int v : {2, 3})
      for (int m : {pp, 2 * pp, 4 * pp})
        for (int stage = 0; stage < pp; ++stage) {
          const auto s = build_schedule(PipelineSchedule::interleaved_1f1b, pp, stage, m, v);
          ASSERT_EQ(int(s.size()), 2 * m * v);
          std::set<std::tuple<int, int, int>> seen;
          for (const auto& a : s) {
            // a backward only after its forward on the same chunk
            if (a.kind == parallel::PipelineAction::Kind::backward) {
              EXPECT_TRUE(seen.count({0, a.microbatch, a.chunk})) << to_string(s);
            }
            EXPECT_TRUE(seen.insert({int(a.kind), a.microbatch, a.chunk}).second);
          }
        }
}

TEST(Schedule, InterleavedMatchesMegatronOrderForTwoStagesTwoChunks) {
  // pp = 2, v = 2, m = 4: stage 0 warms up with (2-0-1)*2 + (2-1)*2 = 4 forwards.
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::interleaved_1f1b, 2, 0, 4, 2)),
            "F0c0 F1c0 F0c1 F1c1 F2c0 B0c1 F3c0 B1c1 F2c1 B0c0 F3c1 B1c0 B2c1 B3c1 B2c0 B3c0");
  EXPECT_THROW(build_schedule(PipelineSchedule::interleaved_1f1b, 2, 0, 3, 2), strata::Error);
}

TEST(Schedule, BubbleFractionIsPMinusOneOverVM) {
  EXPECT_DOUBLE_EQ(parallel::bubble_fraction(4, 8, 1), 3.0 / 8);
  EXPECT_DOUBLE_EQ(parallel::bubble_fraction(4, 8, 2), 3.0 / 16);
  EXPECT_DOUBLE_EQ(parallel::bubble_fraction(1, 8, 1), 0.0);
}

// The executor sends each forward's output to the next virtual stage and each backward's input
// gradient to the previous one, and receives in its own schedule's order. NCCL matches sends and
// receives between two ranks by their order (MPI does too, for one tag): so for every pair of
// stages and each direction, the sequence of messages the sender issues must be the sequence
// the receiver asks for. This holds for every schedule and small case, so the pipeline runs on
// GPUs with the same executor the CPU tests cover.
TEST(Schedule, SendsAndReceivesBetweenEveryPairOfStagesComeInTheSameOrder) {
  using parallel::PipelineAction;
  using Kind = PipelineAction::Kind;
  using S = config::PipelineSchedule;
  struct Message {
    int microbatch, vstage;  // the receiving virtual stage
    bool grad;
    bool operator==(const Message&) const = default;
  };
  for (const S kind : {S::gpipe, S::one_f_one_b, S::interleaved_1f1b, S::zb_h1})
    for (int pp : {2, 3, 4})
      for (int v : kind == S::interleaved_1f1b ? std::vector<int>{2, 3} : std::vector<int>{1})
        for (int m : {pp, 2 * pp, 3 * pp}) {
          // sent[s][t]: messages stage s sends to stage t, in order; received[t][s]: what t asks from s.
          std::vector<std::vector<std::vector<Message>>> sent(pp, std::vector<std::vector<Message>>(pp)),
              received(pp, std::vector<std::vector<Message>>(pp));
          const int last = pp * v - 1;
          for (int stage = 0; stage < pp; ++stage)
            for (const PipelineAction& a : build_schedule(kind, pp, stage, m, v)) {
              const int vs = a.chunk * pp + stage;
              if (a.kind == Kind::forward) {
                if (vs != 0) received[stage][(stage + pp - 1) % pp].push_back({a.microbatch, vs, false});
                if (vs != last) sent[stage][(stage + 1) % pp].push_back({a.microbatch, vs + 1, false});
              } else if (a.kind == Kind::backward) {  // zb_h1's W passes exchange nothing
                if (vs != last) received[stage][(stage + 1) % pp].push_back({a.microbatch, vs, true});
                if (vs != 0) sent[stage][(stage + pp - 1) % pp].push_back({a.microbatch, vs - 1, true});
              }
            }
          for (int s = 0; s < pp; ++s)
            for (int t = 0; t < pp; ++t)
              EXPECT_TRUE(sent[s][t] == received[t][s]) << config::to_string(kind) << " pp " << pp << " v "
                                                        << v << " m " << m << ": stage " << s << " -> " << t;
        }
}

// ---- zb_h1 (Qi et al. 2023, ZB-H1) -------------------------------------------------------

TEST(Schedule, ZbH1KeepsStageManyWeightPassesPending) {
  // pp = 4, m = 6: 1f1b's forwards and input-gradient passes; stage 0 runs each W right after
  // its B, the last stage holds 3 W passes back and runs them where 1f1b's cool-down idles.
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::zb_h1, 4, 0, 6, 1)),
            "F0 F1 F2 F3 B0 W0 F4 B1 W1 F5 B2 W2 B3 W3 B4 W4 B5 W5");
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::zb_h1, 4, 3, 6, 1)),
            "F0 B0 F1 B1 F2 B2 F3 B3 W0 F4 B4 W1 F5 B5 W2 W3 W4 W5");
  EXPECT_EQ(to_string(build_schedule(PipelineSchedule::zb_h1, 1, 0, 2, 1)), "F0 B0 W0 F1 B1 W1");
}

// Every small case: each stage runs F, B and W of every micro-batch exactly once, F before B
// before W; the stages' lists run together without deadlock (simulated_bubble_fraction throws
// otherwise); activations in flight (F to W) never exceed 1f1b's peak, min(pp, m) on stage 0;
// and the bubble is strictly below 1f1b's, with unit costs and with the paper's (table 1: F, B,
// W for sequence length s = h / 2), equal to (pp - 1)(F + B - W) / (m (F + B + W)) once m >= pp.
TEST(Schedule, ZbH1EveryPassOnceInFlightWithin1F1BPeakAndLessBubble) {
  using Kind = parallel::PipelineAction::Kind;
  const parallel::PassCosts unit{1, 1, 1}, paper{26, 28, 24};  // 24bsh^2 + {4, 8, 0} bs^2 h, s = h / 2
  for (int pp = 2; pp <= 4; ++pp)
    for (int m = 1; m <= 8; ++m) {
      SCOPED_TRACE("pp " + std::to_string(pp) + " m " + std::to_string(m));
      int peak_1f1b = 0;
      for (int stage = 0; stage < pp; ++stage)
        peak_1f1b = std::max(
            peak_1f1b,
            parallel::max_in_flight(build_schedule(PipelineSchedule::one_f_one_b, pp, stage, m, 1), 0));
      for (int stage = 0; stage < pp; ++stage) {
        const auto s = build_schedule(PipelineSchedule::zb_h1, pp, stage, m, 1);
        ASSERT_EQ(int(s.size()), 3 * m) << to_string(s);
        std::set<std::pair<int, int>> seen;  // (kind, micro-batch)
        int forwards = 0, weights = 0;
        for (const auto& a : s) {
          EXPECT_EQ(a.chunk, 0);
          if (a.kind == Kind::backward) {
            EXPECT_TRUE(seen.count({int(Kind::forward), a.microbatch})) << to_string(s);
          }
          if (a.kind == Kind::weight) {
            EXPECT_TRUE(seen.count({int(Kind::backward), a.microbatch})) << to_string(s);
          }
          EXPECT_TRUE(seen.insert({int(a.kind), a.microbatch}).second) << to_string(s);
          // micro-batches enter and leave in order, so slot mb % in-flight is free
          if (a.kind == Kind::forward) {
            EXPECT_EQ(a.microbatch, forwards++);
          }
          if (a.kind == Kind::weight) {
            EXPECT_EQ(a.microbatch, weights++);
          }
        }
        const int in_flight = parallel::max_in_flight(s, 0);
        EXPECT_LE(in_flight, peak_1f1b) << "stage " << stage;
        EXPECT_EQ(in_flight, std::min(pp, m)) << "stage " << stage;
      }
      for (const parallel::PassCosts& c : {unit, paper}) {
        const double zb = parallel::simulated_bubble_fraction(PipelineSchedule::zb_h1, pp, m, 1, c);
        const double ofob = parallel::simulated_bubble_fraction(PipelineSchedule::one_f_one_b, pp, m, 1, c);
        EXPECT_NEAR(ofob, parallel::bubble_fraction(pp, m, 1), 1e-12);  // the simulator against (p-1)/m
        EXPECT_LT(zb, ofob);
        const double total = c.forward + c.input_grad + c.weight_grad;
        if (m >= pp) {
          EXPECT_NEAR(zb, (pp - 1) * (c.forward + c.input_grad - c.weight_grad) / (m * total), 1e-12);
        }
      }
    }
}

TEST(Schedule, SimulatedBubbleOfOtherSchedules) {
  const parallel::PassCosts unit{1, 1, 1};
  // GPipe idles as long as 1f1b; interleaving divides the bubble by v.
  EXPECT_NEAR(parallel::simulated_bubble_fraction(PipelineSchedule::gpipe, 4, 8, 1, unit), 3.0 / 8, 1e-12);
  EXPECT_NEAR(parallel::simulated_bubble_fraction(PipelineSchedule::interleaved_1f1b, 4, 8, 2, unit),
              3.0 / 16, 1e-12);
  EXPECT_EQ(parallel::simulated_bubble_fraction(PipelineSchedule::zb_h1, 1, 4, 1, unit), 0.0);
  // what the trainer reports
  EXPECT_NEAR(parallel::bubble_fraction(PipelineSchedule::zb_h1, 4, 8, 1), 3.0 / 24, 1e-12);
  EXPECT_DOUBLE_EQ(parallel::bubble_fraction(PipelineSchedule::one_f_one_b, 4, 8, 1), 3.0 / 8);
}
