// The whole model's gradient against central finite differences in double, for each
// architecture family, plus the invariants the trainer relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../../tiny_models.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/masking.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;
using config::ModelConfig;

namespace {

ModelConfig gpt_tiny() { return test::gpt_tiny(); }

ModelConfig llama_tiny() {  // GQA: two query heads per KV head
  ModelConfig c = test::llama_style(test::gpt_tiny(), 2);
  c.name = "llama_tiny";
  return c;
}

struct Batch {
  std::vector<std::int32_t> tokens, targets;
};

Batch random_batch(const ModelConfig& c, int B, int T, std::uint64_t seed) {
  const core::CounterRng rng(seed, "test.batch");
  Batch b;
  for (int i = 0; i < B * T; ++i) {
    b.tokens.push_back(std::int32_t(rng.below(std::uint64_t(c.vocab_size), std::uint64_t(i))));
    // every 7th position carries no loss (as masked-LM and padding will)
    b.targets.push_back(
        i % 7 == 3 ? -1 : std::int32_t(rng.below(std::uint64_t(c.vocab_size), std::uint64_t(i), 1)));
  }
  return b;
}

// Random, well-conditioned parameters: init draws plus noise so that biases and norm gains
// are not at their special initial values (0 and 1), where some gradient paths vanish.
void perturb(model::Transformer<double>& m, std::uint64_t seed) {
  m.init_parameters(seed);
  const core::CounterRng rng(seed, "test.perturb");
  auto p = m.params();
  for (std::size_t i = 0; i < p.size(); ++i) p[i] += 0.2 * rng.normal(i);
}

// Central differences: with h = 1e-5 in double the truncation error is O(h^2 |L'''|) ~ 1e-10
// and the rounding error O(eps |L| / h) ~ 1e-11, so 1e-7 absolute plus 1e-5 relative is
// several orders above both and far below any real gradient bug.
void expect_gradient_matches_finite_differences(const ModelConfig& cfg, int B, int T,
                                                const Batch* batch = nullptr) {
  model::Transformer<double> m(cfg, B, T);
  perturb(m, 11);
  const Batch b = batch ? *batch : random_batch(cfg, B, T, 5);
  m.zero_grads();
  const model::LossSum base = m.forward(b.tokens.data(), b.targets.data());
  const double scale = 1.0 / double(base.count);
  const model::LossSum fb = m.forward_backward(b.tokens.data(), b.targets.data(), scale);
  EXPECT_NEAR(fb.sum, base.sum, 1e-12 * std::abs(base.sum));
  const std::vector<double> grads(m.grads().begin(), m.grads().end());
  auto params = m.params();
  const double h = 1e-5;
  int checked = 0;
  for (const auto& info : m.table().entries()) {
    for (std::int64_t j = 0; j < info.numel; ++j) {
      const std::size_t i = std::size_t(info.offset + j);
      const double saved = params[i];
      params[i] = saved + h;
      const double lp = m.forward(b.tokens.data(), b.targets.data()).mean();
      params[i] = saved - h;
      const double lm = m.forward(b.tokens.data(), b.targets.data()).mean();
      params[i] = saved;
      const double fd = (lp - lm) / (2 * h);
      ASSERT_NEAR(grads[i], fd, 1e-7 + 1e-5 * std::abs(fd))
          << cfg.name << ": d loss / d " << info.name << "[" << j << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, m.table().numel());
}

}  // namespace

TEST(Transformer, GptStyleGradientMatchesFiniteDifferences) {
  expect_gradient_matches_finite_differences(gpt_tiny(), 2, 5);
}

TEST(Transformer, LlamaStyleGqaRopeGradientMatchesFiniteDifferences) {
  expect_gradient_matches_finite_differences(llama_tiny(), 2, 6);
}

// SwiGLU with biases: the gate and up biases enter the forward (they once sat unused in the
// table: a zero gradient matches a zero finite difference, so tests/unit/ckpt/test_hf_forward
// is what catches a bias left out of the forward).
TEST(Transformer, LlamaStyleWithBiasesGradientMatchesFiniteDifferences) {
  ModelConfig c = llama_tiny();
  c.bias = true;
  expect_gradient_matches_finite_differences(c, 2, 5);
}

TEST(Transformer, BidirectionalAttentionGradientMatchesFiniteDifferences) {
  ModelConfig c = gpt_tiny();
  c.attention = config::AttentionKind::bidirectional;
  c.tied_embeddings = false;
  expect_gradient_matches_finite_differences(c, 2, 4);
}

TEST(Transformer, MaskedLmGradientMatchesFiniteDifferences) {
  // BERT-style: bidirectional attention, inputs corrupted by the masker ([MASK] = the last id,
  // random tokens), the loss only on the chosen positions (the others have target -1).
  ModelConfig c = gpt_tiny();
  c.attention = config::AttentionKind::bidirectional;
  const int B = 2, T = 6;
  data::MaskingOptions o;
  o.probability = 0.4;  // enough chosen positions in 12 for a meaningful test
  o.mask_id = c.vocab_size - 1;
  o.random_vocab = c.vocab_size - 1;
  const data::Masker masker(o, 21, data::MaskStream::train);
  const Batch raw = random_batch(c, B, T, 8);
  Batch b{std::vector<std::int32_t>(B * T), std::vector<std::int32_t>(B * T)};
  for (int s = 0; s < B; ++s)
    masker.apply(std::uint64_t(s), raw.tokens.data() + s * T, T, b.tokens.data() + s * T,
                 b.targets.data() + s * T);
  const auto chosen =
      std::count_if(b.targets.begin(), b.targets.end(), [](std::int32_t x) { return x >= 0; });
  ASSERT_GE(chosen, 2);
  ASSERT_LT(chosen, B * T);
  ASSERT_NE(std::count(b.tokens.begin(), b.tokens.end(), o.mask_id), 0);
  model::Transformer<double> m(c, B, T);
  m.init_parameters(1);
  EXPECT_EQ(m.forward(b.tokens.data(), b.targets.data()).count, chosen);
  expect_gradient_matches_finite_differences(c, B, T, &b);
}

TEST(Transformer, ShorterSequenceMatchesAModelPlannedForIt) {
  // Sequence-length warm-up runs a model planned for T = 8 at t = 5: the loss and every
  // gradient equal those of a model planned for 5 (the same kernels on the first rows), and
  // going back to 8 equals a fresh model at 8.
  for (ModelConfig c : {gpt_tiny(), llama_tiny()}) {
    for (auto recompute : {config::RecomputeKind::none, config::RecomputeKind::full}) {
      c.recompute = recompute;
      model::Transformer<double> planned(c, 2, 8), small(c, 2, 5), full(c, 2, 8);
      perturb(planned, 4);
      perturb(small, 4);
      perturb(full, 4);
      const Batch b5 = random_batch(c, 2, 5, 6), b8 = random_batch(c, 2, 8, 7);
      planned.set_seq_len(5);
      EXPECT_EQ(planned.seq_len(), 5);
      EXPECT_EQ(planned.planned_seq_len(), 8);
      EXPECT_EQ(planned.activation_rows(), 10);
      planned.zero_grads();
      small.zero_grads();
      const auto lp = planned.forward_backward(b5.tokens.data(), b5.targets.data(), 0.1);
      const auto ls = small.forward_backward(b5.tokens.data(), b5.targets.data(), 0.1);
      EXPECT_EQ(lp.count, ls.count);
      EXPECT_NEAR(lp.sum, ls.sum, 1e-12 * std::abs(ls.sum)) << c.name;
      for (std::size_t i = 0; i < small.grads().size(); ++i)
        ASSERT_NEAR(planned.grads()[i], small.grads()[i], 1e-12 + 1e-10 * std::abs(small.grads()[i]))
            << c.name << " gradient " << i;
      planned.set_seq_len(8);
      planned.zero_grads();
      full.zero_grads();
      const auto l8 = planned.forward_backward(b8.tokens.data(), b8.targets.data(), 0.1);
      const auto f8 = full.forward_backward(b8.tokens.data(), b8.targets.data(), 0.1);
      EXPECT_NEAR(l8.sum, f8.sum, 1e-12 * std::abs(f8.sum));
      for (std::size_t i = 0; i < full.grads().size(); ++i)
        ASSERT_NEAR(planned.grads()[i], full.grads()[i], 1e-12 + 1e-10 * std::abs(full.grads()[i]));
    }
  }
  model::Transformer<double> m(gpt_tiny(), 1, 8);
  EXPECT_THROW(m.set_seq_len(9), Error);
  EXPECT_THROW(m.set_seq_len(0), Error);
}

TEST(Transformer, FullRecomputationGivesBitwiseIdenticalGradients) {
  for (ModelConfig c : {gpt_tiny(), llama_tiny()}) {
    model::Transformer<double> plain(c, 2, 6);
    c.recompute = config::RecomputeKind::full;
    model::Transformer<double> recomputed(c, 2, 6);
    perturb(plain, 3);
    perturb(recomputed, 3);
    const Batch b = random_batch(c, 2, 6, 9);
    plain.zero_grads();
    recomputed.zero_grads();
    const auto l1 = plain.forward_backward(b.tokens.data(), b.targets.data(), 0.1);
    const auto l2 = recomputed.forward_backward(b.tokens.data(), b.targets.data(), 0.1);
    EXPECT_EQ(l1.sum, l2.sum);
    for (std::size_t i = 0; i < plain.grads().size(); ++i)
      ASSERT_EQ(plain.grads()[i], recomputed.grads()[i]) << c.name << " gradient " << i;
    // and it needs less activation memory: one layer's set instead of L
    EXPECT_LT(recomputed.activation_memory().total_bytes(), plain.activation_memory().total_bytes());
  }
}

TEST(Transformer, BackwardAccumulatesAcrossMicroBatches) {
  const ModelConfig c = llama_tiny();
  model::Transformer<double> m(c, 1, 4);
  perturb(m, 1);
  const Batch b = random_batch(c, 1, 4, 2);
  m.zero_grads();
  m.forward_backward(b.tokens.data(), b.targets.data(), 1.0);
  const std::vector<double> once(m.grads().begin(), m.grads().end());
  m.forward_backward(b.tokens.data(), b.targets.data(), 1.0);
  for (std::size_t i = 0; i < once.size(); ++i)
    ASSERT_NEAR(m.grads()[i], 2 * once[i], 1e-12 + 1e-12 * std::abs(once[i]));
}

TEST(Transformer, InitialLossIsNearLogVocab) {
  // Small init: logits near zero, so the loss starts at ln V (uniform prediction).
  ModelConfig c = gpt_tiny();
  c.vocab_size = 64;
  model::Transformer<float> m(c, 4, 8);
  m.init_parameters(1234);
  const Batch b = random_batch(c, 4, 8, 3);
  EXPECT_NEAR(m.forward(b.tokens.data(), b.targets.data()).mean(), std::log(64.0), 0.05);
}

TEST(Transformer, InitialisationDependsOnlyOnSeedAndName) {
  const ModelConfig c = gpt_tiny();
  model::Transformer<float> a(c, 1, 4), b(c, 3, 8);  // different activation shapes
  a.init_parameters(77);
  b.init_parameters(77);
  for (std::size_t i = 0; i < a.params().size(); ++i) ASSERT_EQ(a.params()[i], b.params()[i]);
  b.init_parameters(78);
  EXPECT_NE(a.params()[0], b.params()[0]);
}

TEST(Transformer, Gpt2SmallParameterCountMatchesPublishedFigure) {
  ModelConfig c;
  c.num_layers = 12;
  c.d_model = 768;
  c.num_heads = 12;
  c.vocab_size = 50257;
  c.max_seq_len = 1024;
  const model::ParameterTable t = model::make_parameter_table(c);
  EXPECT_EQ(t.numel(), 124439808);  // GPT-2 small as released (Hugging Face "gpt2")
  // In matmuls: 12 layers x (4 C^2 attention + 2 C 4C MLP) + the tied wte as output layer.
  EXPECT_EQ(t.matmul_numel(), 12LL * (4 * 768 * 768 + 2 * 768 * 3072) + 50257LL * 768);
}

TEST(Transformer, TokenOutsideVocabularyIsAClearError) {
  const ModelConfig c = gpt_tiny();
  model::Transformer<float> m(c, 1, 2);
  m.init_parameters(1);
  const std::int32_t tokens[2] = {1, 99}, targets[2] = {1, 2};
  try {
    m.forward(tokens, targets);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 99"), std::string::npos) << e.what();
  }
}
