// Shared by the GPU engine suites (tests/cuda/test_gpu_engine.cpp, tests/mpi/test_gpu_layouts.cpp):
// model shapes the GPU attention kernel runs (head size 64), a deterministic batch, and the
// per-tensor gradient comparison used against a CPU or one-GPU reference.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/core/rng.hpp"
#include "strata/model/parameters.hpp"
#include "strata/parallel/engine.hpp"
#include "tiny_models.hpp"

namespace strata::test {

// GPT-style (LayerNorm, GELU, learned positions, tied embeddings, biases), head size 64,
// an odd vocabulary (padding under TP).
inline config::ModelConfig gpu_gpt(int d_model = 128, int heads = 2) {
  config::ModelConfig c = gpt_tiny();
  c.name = "gpu_gpt";
  c.d_model = d_model;
  c.num_heads = heads;
  c.ffn_hidden = 2 * d_model;
  c.vocab_size = 97;
  c.max_seq_len = 64;
  return c;
}
// LLaMA-style (RMSNorm, SwiGLU, RoPE, GQA with `kv_heads`, untied, no biases), head size 64.
inline config::ModelConfig gpu_llama(int d_model = 128, int heads = 2, int kv_heads = 1) {
  config::ModelConfig c = llama_style(gpu_gpt(d_model, heads), kv_heads);
  c.name = "gpu_llama";
  return c;
}

// Micro-batch `mb` (a global index: DP rank r takes r * m + its local index) of B x T tokens;
// every 7th target is -1 (no loss), as masking and padding produce.
inline void fill_batch(const config::ModelConfig& c, int B, int T, int mb, std::int32_t* tokens,
                       std::int32_t* targets) {
  const core::CounterRng rng(99, "test.gpu_batch");
  for (int i = 0; i < B * T; ++i) {
    const std::uint64_t k = std::uint64_t(mb) * 100000u + std::uint64_t(i);
    tokens[i] = std::int32_t(rng.below(std::uint64_t(c.vocab_size), k));
    targets[i] = i % 7 == 3 ? -1 : std::int32_t(rng.below(std::uint64_t(c.vocab_size), k, 1));
  }
}
inline std::int64_t count_targets(int B, int T, int microbatches) {
  std::int64_t n = 0;
  for (int mb = 0; mb < microbatches; ++mb)
    for (int i = 0; i < B * T; ++i) n += i % 7 == 3 ? 0 : 1;
  return n;
}

// Every element of `got` (in the layout of `got_table`: a TP shard, another vocabulary
// padding) equals the reference element of the same tensor and global index; padding rows 0.
inline void expect_same_values(const model::ParameterTable& got_table, const std::vector<float>& got,
                               const model::ParameterTable& ref_table, const std::vector<float>& ref) {
  for (const model::ParamInfo& p : got_table.entries()) {
    const model::ParamInfo& r = ref_table.get(p.name);
    const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
    for (std::int64_t i = 0; i < p.numel; ++i) {
      const float want = i < real ? ref[std::size_t(r.offset + p.global_index(i))] : 0.0f;
      ASSERT_EQ(got[std::size_t(p.offset + i)], want) << p.name << " element " << i;
    }
  }
}

// Per tensor of `got_table` (a TP shard or the whole model): the local elements against the
// matching elements of the reference (a whole-model table), by global index; vocabulary
// padding rows are skipped. A bf16 computation reproduces the direction and size of each
// gradient tensor to about 1% (each product carries a relative rounding of 2^-9 ~ 0.002 and
// the errors of the O(100) terms of a sum partly cancel), so cosine > 0.99 and a relative
// norm difference < 5e-2 catch any indexing or math error (those give cosines far below 0.9)
// without failing on rounding. Tensors whose reference gradient vanishes (the K bias: adding
// a constant to every score of a softmax row changes nothing, so dL/dbk = 0 exactly) only
// need a gradient as small as the rounding noise.
inline void expect_gradients_close(const model::ParameterTable& got_table, const std::vector<float>& got,
                                   const model::ParameterTable& ref_table, const std::vector<float>& ref,
                                   double min_cosine = 0.99, double max_rel_norm = 5e-2) {
  double total_sq = 0;
  for (float x : ref) total_sq += double(x) * x;
  const double total = std::sqrt(total_sq);
  for (const model::ParamInfo& p : got_table.entries()) {
    const model::ParamInfo& r = ref_table.get(p.name);
    const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
    double dot = 0, gg = 0, rr = 0, dd = 0;
    for (std::int64_t i = 0; i < real; ++i) {
      const double a = got[std::size_t(p.offset + i)];
      const double b = ref[std::size_t(r.offset + p.global_index(i))];
      ASSERT_TRUE(std::isfinite(a)) << p.name << " element " << i << " is not finite";
      dot += a * b, gg += a * a, rr += b * b, dd += (a - b) * (a - b);
    }
    const double gn = std::sqrt(gg), rn = std::sqrt(rr);
    if (rn < 1e-4 * total) {  // a vanishing gradient: only noise is expected
      EXPECT_LT(gn, 1e-3 * total) << p.name << ": reference gradient norm " << rn << ", got " << gn;
      continue;
    }
    const double cosine = dot / (gn * rn + 1e-300);
    EXPECT_GT(cosine, min_cosine) << p.name << ": gradient cosine " << cosine << " (norms " << gn << " vs "
                                  << rn << ")";
    EXPECT_LT(std::abs(gn - rn) / rn, max_rel_norm) << p.name << ": gradient norm " << gn << " vs " << rn;
    EXPECT_LT(std::sqrt(dd) / rn, 3 * max_rel_norm)
        << p.name << ": relative difference " << std::sqrt(dd) / rn;
  }
}

// An engine's parameters (fp32 master weights) and the table they are laid out in: every chunk
// of the rank, concatenated (Engine::download_parameters).
struct EngineParams {
  model::ParameterTable table;
  std::vector<float> values;
};
inline EngineParams engine_params(parallel::Engine& e) {
  EngineParams out;
  std::vector<model::ParamInfo> info;
  e.download_parameters(out.values, info);
  for (const model::ParamInfo& p : info) out.table.add(p);  // offsets are consecutive: the same layout
  return out;
}

}  // namespace strata::test
