// The tiny models the model tests share (unit and multi-rank): small enough for finite
// differences in double, with every architectural feature switchable.
#pragma once
#include "strata/config/config.hpp"

namespace strata::test {

// GPT-style: LayerNorm, GELU, learned positions, tied embeddings, biases, causal.
inline config::ModelConfig gpt_tiny() {
  config::ModelConfig c;
  c.name = "gpt_tiny";
  c.num_layers = 2;
  c.d_model = 16;
  c.num_heads = 4;
  c.ffn_hidden = 24;
  c.vocab_size = 23;
  c.max_seq_len = 8;
  return c;
}

// The same shape LLaMA-style: RMSNorm, SwiGLU, RoPE, `kv_heads` KV heads (GQA when fewer
// than the query heads), untied output layer, no biases.
inline config::ModelConfig llama_style(config::ModelConfig c, int kv_heads) {
  c.num_kv_heads = kv_heads;
  c.norm = config::NormKind::rmsnorm;
  c.mlp = config::MlpKind::swiglu;
  c.positions = config::PositionKind::rope;
  c.tied_embeddings = false;
  c.bias = false;
  return c;
}

// The tensor-parallel suites' shapes: an FFN that splits over 4 ranks, a vocabulary that does
// not (padding), and for LLaMA style 8 query heads over 4 KV heads.
inline config::ModelConfig tp_gpt_tiny() {
  config::ModelConfig c = gpt_tiny();
  c.name = "tp_gpt";
  c.ffn_hidden = 32;
  c.vocab_size = 37;
  return c;
}
inline config::ModelConfig tp_llama_tiny(config::ModelConfig gpt) {
  gpt.name = "tp_llama";
  gpt.num_heads = 8;
  return llama_style(gpt, 4);
}

}  // namespace strata::test
