// Parameter counts of the shipped model files against published figures, and the FLOP formulas
// against hand-computed cases.
#include <gtest/gtest.h>

#include "plan_test_util.hpp"
#include "strata/plan/flops.hpp"

namespace strata::plan {
namespace {

struct Published {
  const char* file;
  double params;  // the figure the paper or model card gives
  const char* source;
};

// Within 1% of the published count. BERT-Large: the paper says 340M; BERT's own implementation
// has 335.14M (bert-large-uncased), of which strata's table lacks the token-type embeddings
// (2 x 1024) and the pooler (1024 x 1024 + 1024) and has a final LayerNorm in place of the
// embedding LayerNorm: 335,141,888 - 2,048 - 1,049,600 = 334,090,240. Compared with 335.14M here.
TEST(PlanFlops, ParameterCountsMatchPublishedFiguresWithinOnePercent) {
  const Published cases[] = {
      {"gpt2_124m", 124.44e6, "Radford et al. 2019 (124M; 124,439,808 in the released checkpoint)"},
      {"gpt2_350m", 355e6, "GPT-2 medium, 355M"},
      {"gpt2_1.5b", 1.558e9, "GPT-2 XL, 1558M"},
      {"llama2_7b", 6.74e9, "Touvron et al. 2023: 6.74B"},
      {"llama2_13b", 13.0e9, "Touvron et al. 2023: 13.0B"},
      {"llama2_70b", 68.98e9, "Touvron et al. 2023: 68.98B (about 69B)"},
      {"gpt3_175b", 175e9, "Brown et al. 2020: 175B"},
      {"bert_large", 335.14e6, "bert-large-uncased: 335.14M (paper: 340M)"},
  };
  for (const auto& c : cases) {
    const ParameterCounts n = count_parameters(test::model(c.file));
    EXPECT_NEAR(double(n.total) / c.params, 1.0, 0.01) << c.file << ": " << n.total << " vs " << c.source;
  }
}

TEST(PlanFlops, ExactCountsOfKnownCheckpoints) {
  EXPECT_EQ(count_parameters(test::model("gpt2_124m")).total, 124439808);   // openai-community/gpt2
  EXPECT_EQ(count_parameters(test::model("llama2_7b")).total, 6738415616);  // meta-llama/Llama-2-7b-hf
  EXPECT_EQ(count_parameters(test::model("llama2_13b")).total, 13015864320);
  EXPECT_EQ(count_parameters(test::model("llama2_70b")).total, 68976648192);
  EXPECT_EQ(count_parameters(test::model("bert_large")).total, 335141888 - 2048 - 1049600);
  // The GPU benchmark model (configs/models/llama_1b.yaml): the count its header comment
  // derives, 2 V C + L (C (C + 2 KV) + C C + 3 C F + 2 C) + C.
  const std::int64_t C = 2048, L = 20, F = 5632, V = 32000, KV = 512;
  EXPECT_EQ(count_parameters(test::model("llama_1b")).total,
            2 * V * C + L * (C * (2 * C + 2 * KV) + 3 * C * F + 2 * C) + C);
}

// GPT-2 124M at T = 1024, by hand: per layer 12 C^2 = 7,077,888 matmul weights, 12 layers =
// 84,934,656, plus the tied output layer 50257 x 768 = 38,597,376: N = 123,532,032.
// 6N = 741,192,192; 12 L T C = 12 * 12 * 1024 * 768 = 113,246,208.
TEST(PlanFlops, Gpt2SmallFlopsPerTokenByHand) {
  const config::ModelConfig m = test::model("gpt2_124m");
  const ParameterCounts n = count_parameters(m);
  EXPECT_EQ(n.matmul, 123532032);
  const FlopsPerToken none = flops_per_token(m, n, 1024, Recompute::none);
  EXPECT_DOUBLE_EQ(none.model, 741192192.0 + 113246208.0);
  EXPECT_DOUBLE_EQ(none.hardware, none.model);
  // Full recomputation: the layers' forward once more (not the output layer's),
  // 2 (N - V C) + 4 L T C = 2 * 84,934,656 + 37,748,736.
  const FlopsPerToken full = flops_per_token(m, n, 1024, Recompute::full);
  EXPECT_DOUBLE_EQ(full.model, none.model);
  EXPECT_DOUBLE_EQ(full.hardware, none.model + 169869312.0 + 37748736.0);
  // Selective: the attention products only, 4 L T C.
  EXPECT_DOUBLE_EQ(flops_per_token(m, n, 1024, Recompute::selective).hardware, none.model + 37748736.0);
}

// Narayanan et al. 2021 eq. 3 (with recomputation): F = 96 B s L h^2 (1 + s/(6h) + V/(16 L h)).
// Megatron ties the output layer, so N = 12 L h^2 + V h; full recomputation repeats the layers
// only, so our hardware FLOPs per token times B s equal eq. 3 exactly.
TEST(PlanFlops, MatchesMegatronEquationThreeWithRecomputation) {
  config::ModelConfig m = test::gpt(24, 2304, 24);
  m.bias = false;  // eq. 3 counts weight matrices only
  const ParameterCounts n = count_parameters(m);
  const double B = 512, s = 2048, L = 24, h = 2304, V = 51200;
  const double eq3 = 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h));
  EXPECT_NEAR(flops_per_token(m, n, 2048, Recompute::full).hardware * B * s / eq3, 1.0, 1e-12);
}

TEST(PlanFlops, TrainingFlopsOfGpt3) {
  // Brown et al. 2020 table D.1: 3.14e23 for 175B (174.6B) parameters and 300B tokens.
  EXPECT_NEAR(training_flops(174.6e9, 300e9) / 3.14e23, 1.0, 0.005);
}

TEST(PlanFlops, ParseAndFormatCounts) {
  EXPECT_DOUBLE_EQ(parse_count("70B", "--params"), 70e9);
  EXPECT_DOUBLE_EQ(parse_count("2T", "--tokens"), 2e12);
  EXPECT_DOUBLE_EQ(parse_count("340M", "--params"), 340e6);
  EXPECT_DOUBLE_EQ(parse_count("1.5e12", "--tokens"), 1.5e12);
  EXPECT_THROW(parse_count("seventy", "--params"), Error);
  EXPECT_THROW(parse_count("70X", "--params"), Error);
  EXPECT_THROW(parse_count("-3", "--params"), Error);
  EXPECT_EQ(format_count(6.74e9), "6.74B");
  EXPECT_EQ(format_count(340e6), "340M");
}

}  // namespace
}  // namespace strata::plan
