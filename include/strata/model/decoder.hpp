// Inference with a key/value cache: the stage of stage.hpp planned for inference
// (StageMode::inference) and run forward only, one sequence at a time, keeping every layer's
// keys and values so that generation costs one token's work per new token (linear in the
// length) instead of re-running the prefix. The layers are the training stage's own code, so
// evaluation and generation compute the function training optimised, on every model the
// config accepts and on every backend.
//
//   forward(tokens of positions p..p+n-1):
//     x = wte[tokens] (+ wpe[p..p+n-1])
//     per layer: q, k, v = Wq/Wk/Wv n1(x) (+ biases); RoPE at positions p..p+n-1;
//                K_cache[p..p+n-1], V_cache[...] = k, v   (KV heads only: GQA caches NKV heads)
//                x = x + Wo attn(q over K_cache[0..p+n-1], V_cache[0..p+n-1]) (+ bo);  x += mlp(n2(x))
//     logits = lm_head(nf(x))   (the last row only, or every row)
// A prompt is "prefilled" with one call (n = prompt length), then each generated token is one
// call with n = 1. truncate(p) rewinds the cache to its first p positions (the rows past p are
// overwritten by the next call), so several continuations of one context reuse its prefill.
//
// The parameters have the layout of the training stage (make_parameter_table with the same
// placement), so a checkpoint loads into it exactly as into training: greedy decoding equals
// the argmax of the training forward's logits at every step (tests/unit/model/test_decoder.cpp,
// tests/mpi/test_generate.cpp).
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
// Every buffer is planned at construction for up to max_len positions; forward never allocates.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/config/config.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

template <class B>
class Decoder {
 public:
  using H = typename B::Host;

  // max_len: cache capacity in positions (0: model.max_seq_len; at most max_seq_len).
  // tp: the tensor-parallel group (on the backend's device) when tp_size > 1. backend: as for Stage.
  Decoder(const config::ModelConfig& cfg, int max_len = 0, int tp_size = 1, int tp_rank = 0,
          comm::Communicator* tp = nullptr, B* backend = nullptr);

  const ParameterTable& table() const { return stage_.table(); }
  const config::ModelConfig& config() const { return stage_.config(); }
  // The compute copy of the parameters (backend memory) and setting it from host values in the
  // table's flat layout (every element).
  std::span<typename B::Act> params() { return stage_.params(); }
  void upload_parameters(const H* host) { stage_.upload_parameters(host); }
  int max_len() const { return stage_.planned_seq_len(); }
  int vocab_size() const { return stage_.config().vocab_size; }

  // Tokens in the cache (the position of the next token).
  int position() const { return pos_; }
  void reset() { pos_ = 0; }
  // Keep the first `position` cached tokens (position <= position()).
  void truncate(int position);

  // Appends `tokens` at positions position()..position()+n-1 and returns their logits over
  // the whole (unpadded) vocabulary, in host memory: [n, vocab_size] when all_rows, else
  // [1, vocab_size] for the last token. Valid until the next call. Throws when the cache would
  // exceed max_len. Collective over the TP group.
  const H* forward(std::span<const std::int32_t> tokens, bool all_rows = false);

 private:
  Stage<B> stage_;
  int tp_size_;
  int pos_ = 0;
  MemoryPlan host_{"decoder host"};
  H* gathered_ = nullptr;  // [tp, max_len, V_local]: every rank's logits slice, on the host
  H* logits_ = nullptr;    // [max_len, vocab_size]
};

}  // namespace strata::model
