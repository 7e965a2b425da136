// zb_h1's split backward (stage_split_impl.hpp): the B pass then the W pass of each micro-batch
// give bitwise the gradients and input gradient of the fused backward_chunk, in double, for
// every architecture family, with two micro-batches in flight (F0 F1 B0 B1 W0 W1 against
// F0 F1 B0 B1: each gradient gets the same terms in the same order), on a whole-model stage and on a chunk
// that takes an activation and runs the head.
#include <gtest/gtest.h>

#include <vector>

#include "../../tiny_models.hpp"
#include "strata/core/rng.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;
using config::ModelConfig;

namespace {

std::vector<std::int32_t> ids(const ModelConfig& c, int n, std::uint64_t seed) {
  const core::CounterRng rng(seed, "test.split");
  std::vector<std::int32_t> out;
  for (int i = 0; i < n; ++i)
    out.push_back(std::int32_t(rng.below(std::uint64_t(c.vocab_size), std::uint64_t(i))));
  return out;
}

void expect_split_matches_fused(const ModelConfig& cfg, bool has_embedding) {
  SCOPED_TRACE(cfg.name + (has_embedding ? " whole model" : " head chunk"));
  const int B = 2, T = 6, N = B * T;
  model::ChunkPlacement place;
  place.has_embedding = has_embedding;
  model::ChunkPlacement split_place = place;
  split_place.split_backward = true;
  model::Transformer<double> fused(cfg, B, T, place, nullptr, 2);
  model::Transformer<double> split(cfg, B, T, split_place, nullptr, 2);
  // the split stage keeps two [N, C] output gradients per layer and slot more
  EXPECT_EQ(split.activation_memory().total_bytes() - fused.activation_memory().total_bytes(),
            std::size_t(2 * 2 * cfg.num_layers * N * cfg.d_model) * sizeof(double));
  fused.init_parameters(7);
  split.init_parameters(7);
  const core::CounterRng rng(3, "test.split.input");
  std::vector<std::vector<double>> inputs(2);
  for (int mb = 0; mb < 2; ++mb)
    for (int i = 0; i < N * cfg.d_model; ++i)
      inputs[std::size_t(mb)].push_back(rng.normal(std::uint64_t(i), mb));
  std::vector<std::vector<std::int32_t>> tokens, targets;
  for (int mb = 0; mb < 2; ++mb) {
    tokens.push_back(ids(cfg, N, 10 + mb));
    targets.push_back(ids(cfg, N, 20 + mb));
  }
  fused.zero_grads();
  split.zero_grads();
  std::vector<std::vector<double>> fused_dx, split_dx;
  // Both F0 F1 first (the head's gradient of a tied table then reaches it in the same order),
  // then fused: B0 B1 (input and weight gradients), split: B0 B1 W0 W1.
  for (model::Transformer<double>* m : {&fused, &split})
    for (int mb = 0; mb < 2; ++mb) {
      m->forward_chunk(mb, tokens[std::size_t(mb)].data(), inputs[std::size_t(mb)].data());
      m->loss(mb, targets[std::size_t(mb)].data(), 0.1, true);
    }
  for (int mb = 0; mb < 2; ++mb) {
    fused.backward_chunk(mb, nullptr);
    fused_dx.emplace_back(fused.input_grad(), fused.input_grad() + N * cfg.d_model);
  }
  for (int mb = 0; mb < 2; ++mb) {
    split.backward_input_chunk(mb, nullptr);
    split_dx.emplace_back(split.input_grad(), split.input_grad() + N * cfg.d_model);
  }
  std::vector<int> layers_ready;
  split.on_layer_grads_ready = [&](int l) { layers_ready.push_back(l); };
  for (int mb = 0; mb < 2; ++mb) split.backward_weight_chunk(mb);
  EXPECT_EQ(layers_ready, (std::vector<int>{1, 0, 1, 0}));  // W hands each layer on, last first
  if (!has_embedding) {
    EXPECT_EQ(split_dx, fused_dx);
  }
  for (std::size_t i = 0; i < fused.grads().size(); ++i)
    ASSERT_EQ(split.grads()[i], fused.grads()[i]) << "gradient " << i;
  // the fused stage cannot run the passes apart
  EXPECT_THROW(fused.backward_weight_chunk(0), Error);
}

}  // namespace

TEST(SplitBackward, InputThenWeightPassesGiveTheFusedGradientsBitwise) {
  ModelConfig llama = test::llama_style(test::gpt_tiny(), 2);
  llama.name = "llama_tiny";
  ModelConfig llama_bias = llama;
  llama_bias.name = "llama_tiny_bias";
  llama_bias.bias = true;
  for (const ModelConfig& c : {test::gpt_tiny(), llama, llama_bias})
    for (bool emb : {true, false}) expect_split_matches_fused(c, emb);
}

TEST(SplitBackward, RecomputationIsRefused) {
  ModelConfig c = test::gpt_tiny();
  c.recompute = config::RecomputeKind::full;
  model::ChunkPlacement place;
  place.split_backward = true;
  EXPECT_THROW(model::Transformer<double>(c, 1, 4, place), Error);
}
