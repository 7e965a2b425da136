// The budget arithmetic and the built-in tables against the figures they reproduce.
#include <gtest/gtest.h>

#include <cmath>

#include "strata/plan/budget.hpp"

namespace strata::plan {
namespace {

const SeedRow& row(const std::vector<SeedRow>& rows, const std::string& prefix) {
  for (const auto& r : rows)
    if (r.name.starts_with(prefix)) return r;
  throw std::runtime_error("no seed row " + prefix);
}

// Tolerances: each row lands within 5% of its quoted figure (GPT-4: 10%, the figure itself is
// "more than $100M"); the GPU-hours Meta reports within 1%.
TEST(PlanBudget, SeedTableReproducesTheQuotedFigures) {
  const auto rows = seed_table();
  ASSERT_EQ(rows.size(), 4u);
  const Budget bert = row(rows, "BERT").budget;
  EXPECT_NEAR(bert.days, 4.0, 0.2);                    // "4 days on 16 Cloud TPUs"
  EXPECT_NEAR(bert.params, 340e6, 1);
  const Budget gpt3 = row(rows, "GPT-3").budget;
  EXPECT_NEAR(gpt3.flops / 3.14e23, 1.0, 0.01);        // Brown et al. table D.1
  EXPECT_NEAR(gpt3.cost / 4.6e6, 1.0, 0.05);           // Lambda Labs: ~$4.6M
  EXPECT_NEAR(gpt3.gpu_hours / (355 * 8760.0), 1.0, 0.01);  // "355 GPU-years"
  const Budget llama = row(rows, "LLaMA-2").budget;
  EXPECT_NEAR(llama.gpu_hours / 1720320.0, 1.0, 0.01); // Touvron et al. table 2
  EXPECT_GE(llama.cost, 10e6);                         // "~$10M+"
  EXPECT_LT(llama.cost, 11e6);
  const SeedRow& gpt4 = row(rows, "GPT-4");
  EXPECT_TRUE(gpt4.speculative);
  EXPECT_NE(gpt4.name.find("speculative"), std::string::npos);
  EXPECT_NE(gpt4.sources.find("SPECULATIVE"), std::string::npos);
  EXPECT_NEAR(gpt4.budget.cost / 100e6, 1.0, 0.10);
  EXPECT_NEAR(gpt4.budget.flops, 6e25, 1e20);
  for (const auto& r : rows) {
    EXPECT_FALSE(r.sources.empty()) << r.name;
    EXPECT_GT(r.budget.energy_mwh, 0) << r.name;
  }
}

// Hoffmann et al. 2022 table 3 with D = k N^e: FLOPs within 2.5% and tokens within 2% on every
// row but 67B, whose printed 1.5T tokens disagree with its own 5.76e23 FLOPs (which imply
// 5.76e23 / (6 x 67e9) = 1.43T); there the tokens are within 2% of 1.43T and 7% of 1.5T.
TEST(PlanBudget, ChinchillaTableWithinStatedTolerance) {
  for (const auto& r : chinchilla_table()) {
    EXPECT_NEAR(r.predicted.flops / r.published_flops, 1.0, 0.025) << r.params;
    if (r.params == 67e9) {
      EXPECT_NEAR(r.predicted.tokens / (r.published_flops / (6 * r.params)), 1.0, 0.02);
      EXPECT_NEAR(r.predicted.tokens / r.published_tokens, 1.0, 0.07);
    } else {
      EXPECT_NEAR(r.predicted.tokens / r.published_tokens, 1.0, 0.02) << r.params;
    }
    const double ratio = r.predicted.tokens / r.params;
    EXPECT_GT(ratio, 19.5);  // "about 20 tokens per parameter"
    EXPECT_LT(ratio, 22.5);
  }
}

TEST(PlanBudget, ComputeOptimalForFlopsInvertsForParams) {
  for (double n : {1e8, 7e9, 70e9, 1e12}) {
    const ComputeOptimal c = chinchilla_for_params(n);
    const ComputeOptimal back = chinchilla_for_flops(c.flops);
    EXPECT_NEAR(back.params / n, 1.0, 1e-9);
    EXPECT_NEAR(back.tokens / c.tokens, 1.0, 1e-9);
  }
  // Chinchilla itself: 5.76e23 FLOPs -> about 70B parameters on 1.4T tokens (Hoffmann et al. sec. 4).
  const ComputeOptimal chinchilla = chinchilla_for_flops(5.76e23);
  EXPECT_NEAR(chinchilla.params / 68e9, 1.0, 0.05);
  EXPECT_NEAR(chinchilla.tokens / 1.4e12, 1.0, 0.05);
}

TEST(PlanBudget, BudgetArithmetic) {
  Budget b;
  b.params = 1e9, b.tokens = 20e9, b.peak_tflops = 1000, b.mfu = 0.5, b.gpus = 10;
  b.price_per_gpu_hour = 2, b.power_watts = 500;
  b = compute_budget(b);
  EXPECT_DOUBLE_EQ(b.flops, 1.2e20);
  EXPECT_NEAR(b.gpu_hours, 1.2e20 / 5e14 / 3600, 1e-9);
  EXPECT_NEAR(b.days, b.gpu_hours / 10 / 24, 1e-12);
  EXPECT_NEAR(b.cost, 2 * b.gpu_hours, 1e-9);
  EXPECT_NEAR(b.energy_mwh, b.gpu_hours * 500 / 1e6, 1e-12);
  // $ -> FLOPs: $1000 at $2/h on a 1000 TFLOP/s GPU at 50% = 500 h x 5e14 x 3600.
  EXPECT_DOUBLE_EQ(flops_for_dollars(1000, 2, 1000, 0.5), 500.0 * 3600 * 5e14);
}

}  // namespace
}  // namespace strata::plan
