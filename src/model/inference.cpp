// The KV-cached forward of inference.hpp; the same kernels, parameter layout and TP
// communication as the training forward (transformer.cpp), on one sequence.
#include "strata/model/inference.hpp"

#include <algorithm>
#include <string>

#include "strata/core/error.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/embedding.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/norm.hpp"
#include "strata/kernels/cpu/rope.hpp"

namespace strata::model {

namespace k = strata::kernels::cpu;
using config::MlpKind;
using config::NormKind;
using config::PositionKind;

template <class T>
Decoder<T>::Decoder(const config::ModelConfig& cfg, int max_len, int tp_size, int tp_rank,
                    comm::Communicator* tp)
    : cfg_(cfg), tp_size_(tp_size), tp_rank_(tp_rank), tp_(tp),
      Tmax_(max_len > 0 ? max_len : cfg.max_seq_len), C_(cfg.d_model), NH_(cfg.num_heads / tp_size),
      NKV_(cfg.kv_heads() / tp_size), HS_(cfg.head_size()), F_(cfg.ffn() / tp_size),
      V_(padded_vocab(cfg.vocab_size, tp_size) / tp_size), L_(cfg.num_layers),
      vocab_start_(std::int64_t(tp_rank) * V_) {
  STRATA_CHECK(Tmax_ <= cfg.max_seq_len, "decoder: cache of ", Tmax_, " positions exceeds model.max_seq_len ",
               cfg.max_seq_len);
  STRATA_CHECK(tp_size == 1 || (tp && tp->size() == tp_size), "decoder: tensor parallelism over ", tp_size,
               " ranks needs a TP communicator of that size");
  STRATA_CHECK(cfg.num_heads % tp_size == 0 && cfg.kv_heads() % tp_size == 0 && cfg.ffn() % tp_size == 0,
               "tp = ", tp_size, " must divide heads (", cfg.num_heads, "), KV heads (", cfg.kv_heads(),
               ") and the MLP width (", cfg.ffn(), ")");
  ChunkPlacement place;
  place.tp_size = tp_size;
  place.tp_rank = tp_rank;
  table_ = make_parameter_table(cfg, place);

  const DType dt = dtype_of<T>();
  const std::int64_t Tm = Tmax_, Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  const bool swiglu = cfg.mlp == MlpKind::swiglu;
  const auto i_params = plan_.add("params", {table_.numel()}, dt, "persistent");
  std::vector<std::size_t> i_k, i_v;
  for (int l = 0; l < L_; ++l) {
    i_k.push_back(plan_.add("kv_cache.k." + std::to_string(l), {Tm, KV}, dt, "cache"));
    i_v.push_back(plan_.add("kv_cache.v." + std::to_string(l), {Tm, KV}, dt, "cache"));
  }
  const auto i_x = plan_.add("resid", {Tm, C_}, dt, "call");
  const auto i_ln = plan_.add("ln", {Tm, C_}, dt, "call");
  const auto i_stats = plan_.add("norm_stats", {2, Tm}, dt, "call");
  const auto i_q = plan_.add("q", {Tm, Q}, dt, "call");
  const auto i_y = plan_.add("attn_y", {Tm, Q}, dt, "call");
  const auto i_s = plan_.add("scores", {Tm, Tm}, dt, "call");
  const auto i_fc = plan_.add(swiglu ? "gate" : "fc", {Tm, F_}, dt, "call");
  const auto i_up = swiglu ? plan_.add("up", {Tm, F_}, dt, "call") : i_fc;
  const auto i_act = plan_.add("act", {Tm, F_}, dt, "call");
  const auto i_ll = plan_.add("logits_local", {Tm, V_}, dt, "call");
  const auto i_g = tp_size > 1 ? plan_.add("logits_gathered", {tp_size, Tm, V_}, dt, "call") : i_ll;
  const auto i_lo = plan_.add("logits", {Tm, cfg.vocab_size}, dt, "call");
  const auto i_tok = plan_.add("tokens", {Tm}, DType::i32, "call");
  plan_.allocate();
  params_ = plan_.data<T>(i_params);
  for (int l = 0; l < L_; ++l) {
    kcache_.push_back(plan_.data<T>(i_k[std::size_t(l)]));
    vcache_.push_back(plan_.data<T>(i_v[std::size_t(l)]));
  }
  x_ = plan_.data<T>(i_x);
  ln_ = plan_.data<T>(i_ln);
  q_ = plan_.data<T>(i_q);
  attn_y_ = plan_.data<T>(i_y);
  scores_ = plan_.data<T>(i_s);
  fc_ = plan_.data<T>(i_fc);
  up_ = plan_.data<T>(i_up);
  act_ = plan_.data<T>(i_act);
  logits_local_ = plan_.data<T>(i_ll);
  gathered_ = plan_.data<T>(i_g);
  logits_ = plan_.data<T>(i_lo);
  tokens_ = plan_.data<std::int32_t>(i_tok);
  norm_stats_ = plan_.data<T>(i_stats);

  auto at = [&](const std::string& name) -> const T* {
    const ParamInfo* p = table_.find(name);
    return p ? params_ + p->offset : nullptr;
  };
  const bool gelu = cfg.mlp == MlpKind::gelu;
  for (int l = 0; l < L_; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    w_.push_back({at(p + "attn_norm.weight"), at(p + "attn_norm.bias"), at(p + "attn.wq.weight"),
                  at(p + "attn.wq.bias"), at(p + "attn.wk.weight"), at(p + "attn.wk.bias"),
                  at(p + "attn.wv.weight"), at(p + "attn.wv.bias"), at(p + "attn.wo.weight"),
                  at(p + "attn.wo.bias"), at(p + "mlp_norm.weight"), at(p + "mlp_norm.bias"),
                  at(p + (gelu ? "mlp.fc.weight" : "mlp.gate.weight")), at(p + "mlp.fc.bias"),
                  at(p + "mlp.up.weight"), at(p + (gelu ? "mlp.proj.weight" : "mlp.down.weight")),
                  at(p + (gelu ? "mlp.proj.bias" : "mlp.down.bias"))});
  }
  wte_ = at("embed.wte");
  wpe_ = at("embed.wpe");
  head_w_ = at(cfg.tied_embeddings ? "embed.wte" : "lm_head.weight");
  nf_w_ = at("final_norm.weight");
  nf_b_ = at("final_norm.bias");
}

template <class T>
void Decoder<T>::truncate(int position) {
  STRATA_CHECK(position >= 0 && position <= pos_, "decoder: cannot truncate the cache of ", pos_,
               " tokens to ", position);
  pos_ = position;
}

template <class T>
void Decoder<T>::all_reduce(T* buf, std::int64_t count) {
  if (tp_size_ > 1) tp_->all_reduce(buf, std::size_t(count), dtype_of<T>());
}

template <class T>
void Decoder<T>::norm(T* y, const T* x, const T* w, const T* b, std::int64_t rows) {
  T* mean = norm_stats_;
  T* rstd = norm_stats_ + Tmax_;
  if (cfg_.norm == NormKind::rmsnorm) k::rmsnorm_forward(y, rstd, x, w, rows, C_, T(cfg_.norm_eps));
  else k::layernorm_forward(y, mean, rstd, x, w, b, rows, C_, T(cfg_.norm_eps));
}

template <class T>
void Decoder<T>::layer_forward(int l, std::int64_t n) {
  const LayerWeights& w = w_[std::size_t(l)];
  const std::int64_t Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  // Attention: this call's keys and values go straight into the cache rows pos..pos+n-1.
  T* kc = kcache_[std::size_t(l)];
  T* vc = vcache_[std::size_t(l)];
  norm(ln_, x_, w.n1_w, w.n1_b, n);
  k::linear_forward(q_, ln_, w.wq, w.bq, n, C_, Q);
  k::linear_forward(kc + pos_ * KV, ln_, w.wk, w.bk, n, C_, KV);
  k::linear_forward(vc + pos_ * KV, ln_, w.wv, w.bv, n, C_, KV);
  if (cfg_.positions == PositionKind::rope) {
    k::rope_forward(q_, 1, n, NH_, HS_, cfg_.rope_theta, pos_);
    k::rope_forward(kc + pos_ * KV, 1, n, NKV_, HS_, cfg_.rope_theta, pos_);
  }
  const k::CachedAttentionShape shape{n, pos_, NH_, NKV_, HS_, Q, KV,
                                      cfg_.attention == config::AttentionKind::causal};
  k::attention_forward_cached(attn_y_, scores_, q_, kc, vc, shape);
  // Row-parallel output: partial sums over the TP group, then the (replicated) bias; ln_
  // holds the attention output, x_ += it.
  k::linear_forward(ln_, attn_y_, w.wo, static_cast<const T*>(nullptr), n, Q, C_);
  all_reduce(ln_, n * C_);
  if (w.bo) k::add_bias(ln_, w.bo, n, C_);
  k::accumulate(x_, ln_, n * C_);
  // MLP
  norm(ln_, x_, w.n2_w, w.n2_b, n);
  k::linear_forward(fc_, ln_, w.w1, w.b1, n, C_, F_);
  if (cfg_.mlp == MlpKind::gelu) {
    k::gelu_forward(act_, fc_, n * F_);
  } else {
    k::linear_forward(up_, ln_, w.w3, static_cast<const T*>(nullptr), n, C_, F_);
    k::swiglu_forward(act_, fc_, up_, n * F_);
  }
  k::linear_forward(ln_, act_, w.w2, static_cast<const T*>(nullptr), n, F_, C_);
  all_reduce(ln_, n * C_);
  if (w.b2) k::add_bias(ln_, w.b2, n, C_);
  k::accumulate(x_, ln_, n * C_);
}

template <class T>
const T* Decoder<T>::forward(std::span<const std::int32_t> tokens, bool all_rows) {
  const std::int64_t n = std::int64_t(tokens.size());
  STRATA_CHECK(n >= 1, "decoder: forward needs at least one token");
  STRATA_CHECK(pos_ + n <= Tmax_, "decoder: ", pos_, " cached + ", n, " new tokens exceed the cache of ", Tmax_,
               " positions (model.max_seq_len ", cfg_.max_seq_len, ")");
  for (std::int64_t i = 0; i < n; ++i) {
    STRATA_CHECK(tokens[std::size_t(i)] >= 0 && tokens[std::size_t(i)] < cfg_.vocab_size, "decoder: token id ",
                 tokens[std::size_t(i)], " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
    tokens_[i] = tokens[std::size_t(i)];
  }
  // Embedding: each TP rank looks up its vocabulary slice; TP rank 0 adds the positions
  // pos..pos+n-1; the sum over the group completes the rows.
  k::embedding_forward(x_, tokens_, wte_, n, C_, vocab_start_, std::int64_t(V_));
  if (wpe_ && tp_rank_ == 0) k::position_embedding_forward(x_, wpe_ + std::int64_t(pos_) * C_, 1, n, C_);
  all_reduce(x_, n * C_);
  for (int l = 0; l < L_; ++l) layer_forward(l, n);
  pos_ += int(n);
  // Head on the rows asked for.
  const std::int64_t rows = all_rows ? n : 1;
  const T* xr = x_ + (n - rows) * C_;
  norm(ln_, xr, nf_w_, nf_b_, rows);
  k::linear_forward(logits_local_, ln_, head_w_, static_cast<const T*>(nullptr), rows, C_, std::int64_t(V_));
  const std::int64_t Vl = V_, Vg = cfg_.vocab_size;
  if (tp_size_ == 1) {
    for (std::int64_t r = 0; r < rows; ++r) std::copy_n(logits_local_ + r * Vl, Vg, logits_ + r * Vg);
    return logits_;
  }
  // Vocab-parallel head: gather [tp, rows, V_local] and drop the padding columns.
  tp_->all_gather(logits_local_, gathered_, std::size_t(rows * Vl), dtype_of<T>());
  for (int t = 0; t < tp_size_; ++t) {
    const std::int64_t v0 = std::int64_t(t) * Vl, nv = std::min<std::int64_t>(Vl, Vg - v0);
    if (nv <= 0) continue;
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy_n(gathered_ + (std::int64_t(t) * rows + r) * Vl, nv, logits_ + r * Vg + v0);
  }
  return logits_;
}

template class Decoder<float>;
template class Decoder<double>;

}  // namespace strata::model
