// Inference with a key/value cache: the transformer of transformer.hpp run forward only, one
// sequence at a time, keeping every layer's keys and values so that generation costs one
// token's work per new token (linear in the length) instead of re-running the prefix.
//
//   forward(tokens of positions p..p+n-1):
//     x = wte[tokens] (+ wpe[p..p+n-1])
//     per layer: q, k, v = Wq/Wk/Wv n1(x); RoPE at positions p..p+n-1 (pos_offset);
//                K_cache[p..p+n-1], V_cache[...] = k, v   (KV heads only: GQA caches NKV heads)
//                x += Wo attn(q over K_cache[0..p+n-1], V_cache[0..p+n-1]);  x += mlp(n2(x))
//     logits = lm_head(nf(x))   (the last row only, or every row)
// A prompt is "prefilled" with one call (n = prompt length), then each generated token is one
// call with n = 1. truncate(p) rewinds the cache to its first p positions (the rows past p are
// overwritten by the next call), so several continuations of one context reuse its prefill.
//
// The parameters use the layout of Transformer<T> (make_parameter_table with the same
// placement), so a checkpoint loads into params() exactly as into the training model, and the
// same kernels compute the same function: greedy decoding equals the argmax of the training
// forward's logits at every step (tests/unit/model/test_inference.cpp, tests/mpi/test_generate.cpp).
//
// Tensor parallelism (Megatron-LM, as in training, no sequence parallelism): each TP rank holds
// its shard of every tensor and caches its own KV heads; the embedding and the row-parallel
// outputs (attention Wo, MLP down) are all-reduced over the TP group; the vocab-parallel logits
// are all-gathered, so every TP rank holds the same full row and, sampling with the same seeded
// counter RNG, picks the same token.
//
// Bidirectional attention (model.attention = bidirectional, masked LM) is supported for a
// whole sequence in one call from position 0 (every query sees every key); incremental
// decoding is only meaningful for causal models.
//
// Every buffer is planned at construction (MemoryPlan) for up to max_len positions; forward
// never allocates.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/parameters.hpp"

namespace strata::model {

template <class T>
class Decoder {
 public:
  // max_len: cache capacity in positions (0: model.max_seq_len; at most max_seq_len).
  // tp: the tensor-parallel group when tp_size > 1.
  Decoder(const config::ModelConfig& cfg, int max_len = 0, int tp_size = 1, int tp_rank = 0,
          comm::Communicator* tp = nullptr);

  std::span<T> params() { return {params_, std::size_t(table_.numel())}; }
  const ParameterTable& table() const { return table_; }
  const config::ModelConfig& config() const { return cfg_; }
  int max_len() const { return Tmax_; }
  int vocab_size() const { return cfg_.vocab_size; }

  // Tokens in the cache (the position of the next token).
  int position() const { return pos_; }
  void reset() { pos_ = 0; }
  // Keep the first `position` cached tokens (position <= position()).
  void truncate(int position);

  // Appends `tokens` at positions position()..position()+n-1 and returns their logits over
  // the whole (unpadded) vocabulary: [n, vocab_size] when all_rows, else [1, vocab_size] for
  // the last token. Valid until the next call. Throws when the cache would exceed max_len.
  // Collective over the TP group.
  const T* forward(std::span<const std::int32_t> tokens, bool all_rows = false);

 private:
  struct LayerWeights {
    const T *n1_w, *n1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *n2_w, *n2_b;
    const T *w1, *b1, *w3, *w2, *b2;
  };
  void norm(T* y, const T* x, const T* w, const T* b, std::int64_t rows);
  void layer_forward(int l, std::int64_t n);
  void all_reduce(T* buf, std::int64_t count);

  config::ModelConfig cfg_;
  int tp_size_, tp_rank_;
  comm::Communicator* tp_;
  int Tmax_, C_, NH_, NKV_, HS_, F_, V_, L_;  // NH_, NKV_, F_, V_ local to this TP rank
  std::int64_t vocab_start_;
  ParameterTable table_;
  MemoryPlan plan_{"decoder"};
  T* params_ = nullptr;
  std::vector<LayerWeights> w_;
  const T *wte_ = nullptr, *wpe_ = nullptr, *head_w_ = nullptr, *nf_w_ = nullptr, *nf_b_ = nullptr;
  std::vector<T*> kcache_, vcache_;  // per layer [Tmax, NKV_local * HS]
  T *x_, *ln_, *q_, *attn_y_, *scores_, *fc_, *up_, *act_, *logits_local_, *gathered_, *logits_,
      *norm_stats_;
  std::int32_t* tokens_ = nullptr;
  int pos_ = 0;
};

extern template class Decoder<float>;
extern template class Decoder<double>;

}  // namespace strata::model
