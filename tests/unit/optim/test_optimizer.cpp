#include <gtest/gtest.h>

#include <cmath>

#include "strata/model/transformer.hpp"
#include "strata/optim/optimizer.hpp"

using namespace strata;

TEST(LearningRate, WarmupThenCosineToFloor) {
  config::OptimConfig c;
  c.lr = 1.0;
  c.min_lr = 0.1;
  c.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 1, 110), 0.1);
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 5, 110), 0.5);
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 10, 110), 1.0);
  EXPECT_NEAR(optim::learning_rate(c, 60, 110), 0.55, 1e-12);  // half-way: floor + half the range
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 110, 110), 0.1);
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 500, 110), 0.1);  // beyond the decay: the floor
  for (long s = 11; s < 110; ++s)
    EXPECT_LE(optim::learning_rate(c, s + 1, 110), optim::learning_rate(c, s, 110));
}

TEST(LearningRate, LinearAndConstantSchedulesAndExplicitDecaySteps) {
  config::OptimConfig c;
  c.lr = 2.0;
  c.min_lr = 0.0;
  c.warmup_steps = 0;
  c.schedule = config::ScheduleKind::linear;
  c.decay_steps = 100;
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 25, 1000), 1.5);
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 100, 1000), 0.0);
  c.schedule = config::ScheduleKind::constant;
  EXPECT_DOUBLE_EQ(optim::learning_rate(c, 999, 1000), 2.0);
}

TEST(Clipping, FactorScalesTheNormDownToTheThreshold) {
  EXPECT_DOUBLE_EQ(optim::clip_factor(0.5, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(optim::clip_factor(4.0, 1.0), 0.25);
  EXPECT_DOUBLE_EQ(optim::clip_factor(4.0, 0.0), 1.0);  // disabled
}

TEST(ParamGroups, NoDecayOnNormsBiasesAndByDefaultEmbeddings) {
  config::ModelConfig m;  // tiny default: layernorm with biases, learned positions
  const model::ParameterTable table = model::make_parameter_table(m);
  config::OptimConfig c;
  c.weight_decay = 0.1;
  std::int64_t covered = 0, decayed = 0, matrices = 0;
  for (const auto& g : optim::make_param_groups(table, c)) {
    covered += g.numel;
    if (g.weight_decay > 0) decayed += g.numel;
  }
  for (const auto& p : table.entries())
    if (p.kind == model::ParamKind::matrix) matrices += p.numel;
  EXPECT_EQ(covered, table.numel());
  EXPECT_EQ(decayed, matrices);
  c.decay_embeddings = true;
  decayed = 0;
  for (const auto& g : optim::make_param_groups(table, c))
    if (g.weight_decay > 0) decayed += g.numel;
  EXPECT_EQ(decayed, matrices + table.get("embed.wte").numel + table.get("embed.wpe").numel);
}

TEST(AdamW, TwoStepsMatchHandComputedUpdateWithDecayAndClipping) {
  config::OptimConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-8;
  optim::AdamW<double> opt(c, {{0, 1, 0.0}, {1, 1, 0.1}}, 2);
  double p[2] = {1.0, 1.0};
  const double g[2] = {0.5, -2.0};
  opt.step(p, g, 0.01, 0.5);  // grad_scale 0.5: g' = {0.25, -1}
  // Step 1: mh = g', vh = g'^2, so the Adam direction is g'/|g'| = sign (eps aside).
  EXPECT_NEAR(p[0], 1.0 - 0.01 * (1.0), 1e-9);
  EXPECT_NEAR(p[1], 1.0 - 0.01 * (-1.0 + 0.1 * 1.0), 1e-9);
  const double p1 = p[1];
  opt.step(p, g, 0.01, 0.5);
  // Step 2 for element 1 (g' = -1 both times): m = -0.19, v = 0.0975; corrections 0.19, 0.0975.
  const double mh = -0.19 / 0.19, vh = 0.0975 / 0.0975;
  EXPECT_NEAR(p[1], p1 - 0.01 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * p1), 1e-9);
  EXPECT_EQ(opt.steps_taken(), 2);
  EXPECT_EQ(opt.state_bytes(), 2u * 64u);  // m and v, each padded to 64 bytes
}
