// The transformer chunk's forward and backward; see transformer.hpp for the math and the
// tensor/sequence-parallel communication.
#include "strata/model/transformer.hpp"

#include <array>
#include <cmath>
#include <string>

#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"
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

namespace {
std::string layer_name(int l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }
}  // namespace

template <class T>
Transformer<T>::Transformer(const config::ModelConfig& cfg, int batch, int seq_len,
                            const ChunkPlacement& placement, comm::Communicator* tp, int slots,
                            bool allocate)
    : cfg_(cfg), place_(placement), tp_(tp), B_(batch), T_(seq_len), C_(cfg.d_model),
      NH_(cfg.num_heads / placement.tp_size), NKV_(cfg.kv_heads() / placement.tp_size),
      HS_(cfg.head_size()), F_(cfg.ffn() / placement.tp_size),
      V_(padded_vocab(cfg.vocab_size, placement.tp_size) / placement.tp_size),
      L_(placement.num_layers < 0 ? cfg.num_layers : placement.num_layers),
      Lfirst_(placement.first_layer), Tmax_(seq_len), N_(std::int64_t(batch) * seq_len),
      Nsp_(placement.sequence_parallel ? N_ / placement.tp_size : N_),
      vocab_start_(std::int64_t(placement.tp_rank) * V_),
      vocab_real_(std::max<std::int64_t>(0, std::min<std::int64_t>(V_, cfg.vocab_size - vocab_start_))),
      sp_(placement.sequence_parallel && placement.tp_size > 1),
      table_(make_parameter_table(cfg, placement)) {
  const int tps = placement.tp_size;
  STRATA_CHECK(seq_len <= cfg.max_seq_len, "sequence length ", seq_len, " exceeds model.max_seq_len ",
               cfg.max_seq_len);
  STRATA_CHECK(tps == 1 || !allocate || (tp && tp->size() == tps), "tensor parallelism over ", tps,
               " ranks needs a TP communicator of that size");
  STRATA_CHECK(cfg.num_heads % tps == 0 && cfg.kv_heads() % tps == 0 && cfg.ffn() % tps == 0,
               "tp = ", tps, " must divide heads (", cfg.num_heads, "), KV heads (", cfg.kv_heads(),
               ") and the MLP width (", cfg.ffn(), ")");
  STRATA_CHECK(!placement.sequence_parallel || N_ % tps == 0, "sequence parallelism needs batch x seq_len (",
               N_, ") divisible by tp (", tps, ")");
  STRATA_CHECK(slots >= 1, "a model chunk needs at least one activation slot");
  const DType dt = dtype_of<T>();
  for (int l = Lfirst_; l < Lfirst_ + L_; ++l) layer_ranges_.push_back(table_.layer_range(l));
  // Padded to a multiple of flat_multiple (the DP size, for ZeRO-1's equal pieces); the
  // padding stays zero.
  const std::int64_t flat = (table_.numel() + placement.flat_multiple - 1) / placement.flat_multiple *
                            placement.flat_multiple;
  param_plan_.add("params", {flat}, dt, "persistent");
  param_plan_.add("grads", {flat}, dt, "persistent");
  // Activations: per slot, the residual stream of every layer (each layer's input) and the
  // rest per layer, or one shared set of layer activations under full recomputation.
  const std::int64_t N = N_, Ns = Nsp_, Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  const bool swiglu = cfg.mlp == MlpKind::swiglu;
  const bool shared = cfg.recompute == config::RecomputeKind::full;
  auto add_layer_set = [&](const std::string& p, const char* life) {
    auto add = [&](const char* n, Shape sh) { return act_plan_.add(p + n, std::move(sh), dt, life); };
    std::array<std::size_t, 15> a{};
    a[0] = add("ln1_mean", {Ns});
    a[1] = add("ln1_rstd", {Ns});
    a[2] = add("ln1", {N, C_});
    a[3] = add("q", {N, Q});
    a[4] = add("k", {N, KV});
    a[5] = add("v", {N, KV});
    a[6] = add("att", {B_, NH_, T_, T_});
    a[7] = add("attn_y", {N, Q});
    a[8] = add("mid", {Ns, C_});
    a[9] = add("ln2_mean", {Ns});
    a[10] = add("ln2_rstd", {Ns});
    a[11] = add("ln2", {N, C_});
    a[12] = add(swiglu ? "gate" : "fc", {N, F_});
    a[13] = swiglu ? add("up", {N, F_}) : a[12];
    a[14] = add("act", {N, F_});
    return a;
  };
  std::array<std::size_t, 15> shared_set{};
  if (shared) shared_set = add_layer_set("layer*.", "layer");
  struct SlotIndex {
    std::vector<std::size_t> resid;
    std::vector<std::array<std::size_t, 15>> layers;
    std::size_t lnf_mean = 0, lnf_rstd = 0, lnf = 0, head_dx = 0, tokens = 0;
  };
  std::vector<SlotIndex> idx(static_cast<std::size_t>(slots));
  for (int s = 0; s < slots; ++s) {
    const std::string sp = slots > 1 ? "slot" + std::to_string(s) + "." : "";
    SlotIndex& si = idx[std::size_t(s)];
    for (int l = 0; l <= L_; ++l)
      si.resid.push_back(act_plan_.add(sp + "resid." + std::to_string(Lfirst_ + l), {Ns, C_}, dt, "step"));
    for (int l = 0; l < L_; ++l)
      si.layers.push_back(shared ? shared_set
                                 : add_layer_set(sp + "layers." + std::to_string(Lfirst_ + l) + ".", "step"));
    if (placement.has_head) {
      si.lnf_mean = act_plan_.add(sp + "final_norm_mean", {Ns}, dt, "step");
      si.lnf_rstd = act_plan_.add(sp + "final_norm_rstd", {Ns}, dt, "step");
      si.head_dx = act_plan_.add(sp + "grad.head_input", {Ns, C_}, dt, "step");
    }
    if (placement.has_embedding) si.tokens = act_plan_.add(sp + "tokens", {N}, DType::i32, "step");
  }
  auto add_work = [&](const char* n, Shape sh) { return act_plan_.add(n, std::move(sh), dt, "work"); };
  const std::size_t i_lnf = placement.has_head ? add_work("final_norm", {N, C_}) : 0;
  const std::size_t i_logits = placement.has_head ? add_work("logits", {N, V_}) : 0;
  const std::size_t i_losses = placement.has_head ? add_work("losses", {N}) : 0;
  const std::size_t i_ce = placement.has_head ? add_work("ce_stats", {3, N}) : 0;
  const auto i_d_resid = add_work("grad.resid", {Ns, C_});
  const auto i_d_ln = add_work("grad.ln", {N, C_});
  const auto i_d_full = sp_ ? add_work("grad.full", {N, C_}) : i_d_ln;
  const auto i_partial = sp_ ? add_work("tp_partial", {N, C_}) : i_d_ln;
  const auto i_d_attn_y = add_work("grad.attn_y", {N, Q});
  const auto i_d_q = add_work("grad.q", {N, Q});
  const auto i_d_k = add_work("grad.k", {N, KV});
  const auto i_d_v = add_work("grad.v", {N, KV});
  const auto i_d_fc = add_work(swiglu ? "grad.gate" : "grad.fc", {N, F_});
  const auto i_d_up = swiglu ? add_work("grad.up", {N, F_}) : i_d_fc;
  const auto i_d_act = add_work("grad.act", {N, F_});
  const auto i_scratch = add_work("grad.att_scratch", {T_, T_});
  if (!allocate) return;
  param_plan_.allocate();
  params_ = param_plan_.data<T>(0);
  grads_ = param_plan_.data<T>(1);
  for (int l = Lfirst_; l < Lfirst_ + L_; ++l) {
    w_.push_back(find_layer_weights(l, params_));
    g_.push_back(find_layer_weights(l, grads_));
  }
  auto pair = [&](const char* name, T*& w, T*& g) {
    const ParamInfo* p = table_.find(name);
    w = p ? params_ + p->offset : nullptr;
    g = p ? grads_ + p->offset : nullptr;
  };
  pair("embed.wte", wte_, dwte_);
  pair("embed.wpe", wpe_, dwpe_);
  pair(cfg.tied_embeddings ? "embed.wte" : "lm_head.weight", head_w_, dhead_w_);
  pair("final_norm.weight", nf_w_, dnf_w_);
  pair("final_norm.bias", nf_b_, dnf_b_);

  act_plan_.allocate();

  auto P = [&](std::size_t i) { return act_plan_.data<T>(i); };
  for (const SlotIndex& si : idx) {
    SlotBuffers sb{};
    for (auto i : si.resid) sb.resid.push_back(P(i));
    for (const auto& a : si.layers)
      sb.layers.push_back({P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P(a[5]), P(a[6]), P(a[7]),
                           P(a[8]), P(a[9]), P(a[10]), P(a[11]), P(a[12]), P(a[13]), P(a[14])});
    if (placement.has_head) {
      sb.lnf_mean = P(si.lnf_mean);
      sb.lnf_rstd = P(si.lnf_rstd);
      sb.lnf_full = P(i_lnf);
      sb.logits = P(i_logits);
      sb.losses = P(i_losses);
      sb.head_dx = P(si.head_dx);
    }
    sb.tokens = placement.has_embedding ? act_plan_.data<std::int32_t>(si.tokens) : nullptr;
    slots_.push_back(sb);
  }
  if (placement.has_head) {
    ce_max_ = P(i_ce);
    ce_sum_ = ce_max_ + N;
    ce_target_ = ce_sum_ + N;  // ce_sum_ and ce_target_ adjacent: one all-reduce for both
  }
  d_resid_ = P(i_d_resid);
  d_ln_ = P(i_d_ln);
  d_full_ = P(i_d_full);
  partial_ = P(i_partial);
  d_attn_y_ = P(i_d_attn_y);
  d_q_ = P(i_d_q);
  d_k_ = P(i_d_k);
  d_v_ = P(i_d_v);
  d_fc_ = P(i_d_fc);
  d_up_ = P(i_d_up);
  d_act_ = P(i_d_act);
  att_scratch_ = P(i_scratch);
}

template <class T>
typename Transformer<T>::LayerWeights Transformer<T>::find_layer_weights(int l, T* base) const {
  auto at = [&](const char* rest) -> T* {
    const ParamInfo* p = table_.find(layer_name(l, rest));
    return p ? base + p->offset : nullptr;  // absent: no bias, or the other MLP kind
  };
  LayerWeights w{};
  w.n1_w = at("attn_norm.weight");
  w.n1_b = at("attn_norm.bias");
  w.wq = at("attn.wq.weight");
  w.bq = at("attn.wq.bias");
  w.wk = at("attn.wk.weight");
  w.bk = at("attn.wk.bias");
  w.wv = at("attn.wv.weight");
  w.bv = at("attn.wv.bias");
  w.wo = at("attn.wo.weight");
  w.bo = at("attn.wo.bias");
  w.n2_w = at("mlp_norm.weight");
  w.n2_b = at("mlp_norm.bias");
  const bool gelu = cfg_.mlp == MlpKind::gelu;
  w.w1 = at(gelu ? "mlp.fc.weight" : "mlp.gate.weight");
  w.b1 = at(gelu ? "mlp.fc.bias" : "mlp.gate.bias");
  w.w3 = at("mlp.up.weight");
  w.b3 = at("mlp.up.bias");
  w.w2 = at(gelu ? "mlp.proj.weight" : "mlp.down.weight");
  w.b2 = at(gelu ? "mlp.proj.bias" : "mlp.down.bias");
  return w;
}

template <class T>
std::pair<std::int64_t, std::int64_t> Transformer<T>::layer_range(int layer) const {
  STRATA_CHECK(layer >= Lfirst_ && layer < Lfirst_ + L_, "layer ", layer, " is not in this model chunk");
  return layer_ranges_[std::size_t(layer - Lfirst_)];
}

template <class T>
void Transformer<T>::init_parameters(std::uint64_t seed) {
  init_parameter_values(table_, seed, params_);
}

template <class T>
void Transformer<T>::set_seq_len(int seq_len) {
  STRATA_CHECK(seq_len >= 1 && seq_len <= Tmax_, "sequence length ", seq_len, " is outside [1, ", Tmax_,
               "], the length this model chunk was planned for");
  const std::int64_t N = std::int64_t(B_) * seq_len;
  STRATA_CHECK(!place_.sequence_parallel || N % place_.tp_size == 0, "sequence parallelism needs batch x ",
               "seq_len (", B_, " x ", seq_len, ") divisible by tp (", place_.tp_size, ")");
  T_ = seq_len;
  N_ = N;
  Nsp_ = place_.sequence_parallel ? N_ / place_.tp_size : N_;
  // ce_sum_ and ce_target_ stay adjacent for their single all-reduce of 2 N_ values.
  if (ce_sum_) ce_target_ = ce_sum_ + N_;
}

template <class T>
void Transformer<T>::zero_grads() {
  k::fill(grads_, T(0), table_.numel());
}

template <class T>
void Transformer<T>::reduce_sequence_parallel_grads(std::int64_t begin, std::int64_t end) {
  if (!sp_) return;
  for (const ParamInfo& p : table_.entries())
    if (p.grad_needs_tp_sum && p.offset >= begin && p.offset < end)
      tp_->all_reduce(grads_ + p.offset, std::size_t(p.numel), dtype_of<T>());
}

// ---- tensor-parallel communication ----------------------------------------------------

template <class T>
void Transformer<T>::norm_into_full(T* full, T* mean, T* rstd, const T* x, const T* w, const T* b) {
  T* y = sp_ ? full + std::int64_t(place_.tp_rank) * Nsp_ * C_ : full;
  if (cfg_.norm == NormKind::rmsnorm) k::rmsnorm_forward(y, rstd, x, w, Nsp_, C_, T(cfg_.norm_eps));
  else k::layernorm_forward(y, mean, rstd, x, w, b, Nsp_, C_, T(cfg_.norm_eps));
  if (sp_) tp_->all_gather(y, full, std::size_t(Nsp_ * C_), dtype_of<T>());
}

template <class T>
void Transformer<T>::norm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                                   const T* mean, const T* rstd) {
  if (cfg_.norm == NormKind::rmsnorm) k::rmsnorm_backward(dx, dw, dy, x, w, rstd, Nsp_, C_);
  else k::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, Nsp_, C_);
}

template <class T>
void Transformer<T>::reduce_from_tp(T* partial, T* out) {
  if (place_.tp_size == 1) return;  // partial == out
  if (sp_) tp_->reduce_scatter(partial, out, std::size_t(Nsp_ * C_), dtype_of<T>());
  else tp_->all_reduce(out, std::size_t(N_ * C_), dtype_of<T>());
}

template <class T>
void Transformer<T>::reduce_grad_to_shard(T* partial_full, T* shard) {
  if (place_.tp_size == 1) return;  // partial_full == shard
  if (sp_) tp_->reduce_scatter(partial_full, shard, std::size_t(Nsp_ * C_), dtype_of<T>());
  else tp_->all_reduce(shard, std::size_t(N_ * C_), dtype_of<T>());
}

template <class T>
const T* Transformer<T>::gather_grad_from_shard(const T* shard) {
  if (!sp_) return shard;
  tp_->all_gather(shard, d_full_, std::size_t(Nsp_ * C_), dtype_of<T>());
  return d_full_;
}

// ---- forward ----------------------------------------------------------------------------

template <class T>
void Transformer<T>::embed_forward(const SlotBuffers& s) {
  // Each TP rank looks up its vocabulary slice (other tokens give zero rows); the partial
  // embeddings are summed over the group. Positions are added once, by TP rank 0.
  T* out = s.resid[0];
  T* partial = sp_ ? partial_ : out;
  k::embedding_forward(partial, s.tokens, wte_, N_, C_, vocab_start_, std::int64_t(V_));
  if (wpe_ && place_.tp_rank == 0) k::position_embedding_forward(partial, wpe_, B_, T_, C_);
  reduce_from_tp(partial, out);
}

template <class T>
void Transformer<T>::layer_forward(const SlotBuffers& s, int li) {
  const LayerWeights& w = w_[std::size_t(li)];
  const LayerActs& a = s.layers[std::size_t(li)];
  const T* x = s.resid[std::size_t(li)];
  T* out = s.resid[std::size_t(li) + 1];
  const std::int64_t Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  // attention block: column-parallel Q, K, V over local heads, row-parallel output
  norm_into_full(a.ln1_full, a.ln1_mean, a.ln1_rstd, x, w.n1_w, w.n1_b);
  k::linear_forward(a.q, a.ln1_full, w.wq, w.bq, N_, C_, Q);
  k::linear_forward(a.k, a.ln1_full, w.wk, w.bk, N_, C_, KV);
  k::linear_forward(a.v, a.ln1_full, w.wv, w.bv, N_, C_, KV);
  if (cfg_.positions == PositionKind::rope) {
    k::rope_forward(a.q, B_, T_, NH_, HS_, cfg_.rope_theta);
    k::rope_forward(a.k, B_, T_, NKV_, HS_, cfg_.rope_theta);
  }
  const k::AttentionShape shape{B_, T_, NH_, NKV_, HS_, Q, KV,
                                cfg_.attention == config::AttentionKind::causal};
  k::attention_forward(a.attn_y, a.att, a.q, a.k, a.v, shape);
  T* partial = sp_ ? partial_ : a.mid;
  k::linear_forward(partial, a.attn_y, w.wo, static_cast<const T*>(nullptr), N_, Q, C_);
  reduce_from_tp(partial, a.mid);
  if (w.bo) k::add_bias(a.mid, w.bo, Nsp_, C_);
  k::accumulate(a.mid, x, Nsp_ * C_);  // mid = x + attn
  // MLP block: column-parallel up (and gate), row-parallel down
  norm_into_full(a.ln2_full, a.ln2_mean, a.ln2_rstd, a.mid, w.n2_w, w.n2_b);
  k::linear_forward(a.fc, a.ln2_full, w.w1, w.b1, N_, C_, F_);
  if (cfg_.mlp == MlpKind::gelu) {
    k::gelu_forward(a.act, a.fc, N_ * F_);
  } else {
    k::linear_forward(a.up, a.ln2_full, w.w3, w.b3, N_, C_, F_);
    k::swiglu_forward(a.act, a.fc, a.up, N_ * F_);
  }
  partial = sp_ ? partial_ : out;
  k::linear_forward(partial, a.act, w.w2, static_cast<const T*>(nullptr), N_, F_, C_);
  reduce_from_tp(partial, out);
  if (w.b2) k::add_bias(out, w.b2, Nsp_, C_);
  k::accumulate(out, a.mid, Nsp_ * C_);  // out = mid + mlp
}

template <class T>
void Transformer<T>::forward_chunk(int slot, const std::int32_t* tokens, const T* input) {
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  if (place_.has_embedding) {
    for (std::int64_t i = 0; i < N_; ++i) {
      STRATA_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "token id ", tokens[i],
                   " at position ", i, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
      s.tokens[i] = tokens[i];
    }
    embed_forward(s);
  } else {
    k::copy(s.resid[0], input, Nsp_ * C_);
  }
  for (int l = 0; l < L_; ++l) layer_forward(s, l);
}

template <class T>
const T* Transformer<T>::output(int slot) const {
  return slots_.at(std::size_t(slot)).resid[std::size_t(L_)];
}

template <class T>
void Transformer<T>::head_forward(const SlotBuffers& s) {
  norm_into_full(s.lnf_full, s.lnf_mean, s.lnf_rstd, s.resid[std::size_t(L_)], nf_w_, nf_b_);
  k::linear_forward(s.logits, s.lnf_full, head_w_, static_cast<const T*>(nullptr), N_, C_, std::int64_t(V_));
}

template <class T>
LossSum Transformer<T>::loss(int slot, const std::int32_t* targets, T grad_scale, bool with_grad) {
  STRATA_CHECK(place_.has_head, "loss() called on a model chunk without the output layer");
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  for (std::int64_t i = 0; i < N_; ++i)
    STRATA_CHECK(targets[i] < cfg_.vocab_size, "target id ", targets[i], " at position ", i,
                 " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  head_forward(s);
  const std::int64_t V = V_;
  if (place_.tp_size == 1) {
    if (with_grad) k::cross_entropy_fused(s.logits, s.losses, targets, grad_scale, N_, V, V);
    else k::cross_entropy_forward(s.losses, s.logits, targets, N_, V, V);
  } else {
    // Vocab-parallel: the logits stay sharded; three reductions combine the row statistics.
    k::vocab_parallel_ce_max(ce_max_, s.logits, N_, vocab_real_, V);
    tp_->all_reduce(ce_max_, std::size_t(N_), dtype_of<T>(), comm::ReduceOp::max);
    k::vocab_parallel_ce_sumexp(ce_sum_, ce_target_, s.logits, ce_max_, targets, N_, vocab_real_, V,
                                vocab_start_);
    tp_->all_reduce(ce_sum_, std::size_t(2 * N_), dtype_of<T>());
    k::vocab_parallel_ce_finish(s.logits, s.losses, ce_max_, ce_sum_, ce_target_, targets, grad_scale,
                                with_grad, N_, vocab_real_, V, vocab_start_);
  }
  LossSum sum;
  for (std::int64_t i = 0; i < N_; ++i) {
    if (targets[i] < 0) continue;
    sum.sum += double(s.losses[i]);
    ++sum.count;
  }
  if (with_grad) head_backward(s);
  return sum;
}

// ---- backward ---------------------------------------------------------------------------

template <class T>
void Transformer<T>::head_backward(const SlotBuffers& s) {
  // logits = nf(x) W^T with the logits now holding their gradient. The head's backward runs
  // right after the loss so one logits buffer serves every slot; the gradient of the
  // chunk's output is kept per slot until backward_chunk.
  T* dx_full = sp_ ? partial_ : d_ln_;
  k::fill(dx_full, T(0), N_ * C_);
  k::linear_backward(dx_full, dhead_w_, static_cast<T*>(nullptr), s.logits, s.lnf_full, head_w_, N_, C_,
                     std::int64_t(V_));
  reduce_grad_to_shard(dx_full, d_ln_);
  k::fill(s.head_dx, T(0), Nsp_ * C_);
  norm_backward(s.head_dx, dnf_w_, dnf_b_, d_ln_, s.resid[std::size_t(L_)], nf_w_, s.lnf_mean, s.lnf_rstd);
}

template <class T>
void Transformer<T>::layer_backward(const SlotBuffers& s, int li) {
  const LayerWeights& w = w_[std::size_t(li)];
  const LayerWeights& g = g_[std::size_t(li)];
  const LayerActs& a = s.layers[std::size_t(li)];
  const T* x = s.resid[std::size_t(li)];
  const std::int64_t Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  T* dx_full = sp_ ? partial_ : d_ln_;  // partial gradient of a column-parallel layer's input
  // d_resid holds dL/d(out). out = mid + W2 act + b2: the identity path leaves d_resid as the
  // first part of dL/d(mid); the MLP path is accumulated into it by the norm backward.
  if (g.b2) k::linear_backward(static_cast<T*>(nullptr), static_cast<T*>(nullptr), g.b2, d_resid_,
                               static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), Nsp_, 0, C_);
  const T* d_out = gather_grad_from_shard(d_resid_);
  k::fill(d_act_, T(0), N_ * F_);
  k::linear_backward(d_act_, g.w2, static_cast<T*>(nullptr), d_out, a.act, w.w2, N_, F_, C_);
  k::fill(d_fc_, T(0), N_ * F_);
  if (cfg_.mlp == MlpKind::gelu) {
    k::gelu_backward(d_fc_, d_act_, a.fc, N_ * F_);
  } else {
    k::fill(d_up_, T(0), N_ * F_);
    k::swiglu_backward(d_fc_, d_up_, d_act_, a.fc, a.up, N_ * F_);
  }
  k::fill(dx_full, T(0), N_ * C_);
  k::linear_backward(dx_full, g.w1, g.b1, d_fc_, a.ln2_full, w.w1, N_, C_, F_);
  if (cfg_.mlp == MlpKind::swiglu)
    k::linear_backward(dx_full, g.w3, g.b3, d_up_, a.ln2_full, w.w3, N_, C_, F_);
  reduce_grad_to_shard(dx_full, d_ln_);
  norm_backward(d_resid_, g.n2_w, g.n2_b, d_ln_, a.mid, w.n2_w, a.ln2_mean, a.ln2_rstd);
  // mid = x + Wo attn(...) + bo: likewise d_resid becomes dL/dx.
  if (g.bo) k::linear_backward(static_cast<T*>(nullptr), static_cast<T*>(nullptr), g.bo, d_resid_,
                               static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), Nsp_, 0, C_);
  d_out = gather_grad_from_shard(d_resid_);
  k::fill(d_attn_y_, T(0), N_ * Q);
  k::linear_backward(d_attn_y_, g.wo, static_cast<T*>(nullptr), d_out, a.attn_y, w.wo, N_, Q, C_);
  k::fill(d_q_, T(0), N_ * Q);
  k::fill(d_k_, T(0), N_ * KV);
  k::fill(d_v_, T(0), N_ * KV);
  const k::AttentionShape shape{B_, T_, NH_, NKV_, HS_, Q, KV,
                                cfg_.attention == config::AttentionKind::causal};
  k::attention_backward(d_q_, d_k_, d_v_, att_scratch_, d_attn_y_, a.att, a.q, a.k, a.v, shape);
  if (cfg_.positions == PositionKind::rope) {
    k::rope_backward(d_q_, B_, T_, NH_, HS_, cfg_.rope_theta);
    k::rope_backward(d_k_, B_, T_, NKV_, HS_, cfg_.rope_theta);
  }
  k::fill(dx_full, T(0), N_ * C_);
  k::linear_backward(dx_full, g.wq, g.bq, d_q_, a.ln1_full, w.wq, N_, C_, Q);
  k::linear_backward(dx_full, g.wk, g.bk, d_k_, a.ln1_full, w.wk, N_, C_, KV);
  k::linear_backward(dx_full, g.wv, g.bv, d_v_, a.ln1_full, w.wv, N_, C_, KV);
  reduce_grad_to_shard(dx_full, d_ln_);
  norm_backward(d_resid_, g.n1_w, g.n1_b, d_ln_, x, w.n1_w, a.ln1_mean, a.ln1_rstd);
}

template <class T>
void Transformer<T>::embed_backward(const SlotBuffers& s) {
  const T* d = gather_grad_from_shard(d_resid_);  // the whole [N, C] gradient on every TP rank
  k::embedding_backward(dwte_, d, s.tokens, N_, C_, vocab_start_, std::int64_t(V_));
  if (dwpe_) k::position_embedding_backward(dwpe_, d, B_, T_, C_);
}

template <class T>
void Transformer<T>::backward_chunk(int slot, const T* output_grad) {
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  k::copy(d_resid_, place_.has_head ? s.head_dx : output_grad, Nsp_ * C_);
  const bool recompute = cfg_.recompute == config::RecomputeKind::full;
  for (int l = L_ - 1; l >= 0; --l) {
    if (recompute) layer_forward(s, l);  // rebuild this layer's activations from its input
    layer_backward(s, l);
    if (on_layer_grads_ready) on_layer_grads_ready(Lfirst_ + l);
  }
  if (place_.has_embedding) embed_backward(s);
}

// ---- one rank ---------------------------------------------------------------------------

template <class T>
LossSum Transformer<T>::forward(const std::int32_t* tokens, const std::int32_t* targets) {
  forward_chunk(0, tokens, nullptr);
  return loss(0, targets, T(0), false);
}

template <class T>
LossSum Transformer<T>::forward_backward(const std::int32_t* tokens, const std::int32_t* targets,
                                         T grad_scale) {
  forward_chunk(0, tokens, nullptr);
  const LossSum l = loss(0, targets, grad_scale, true);
  backward_chunk(0, nullptr);
  return l;
}

template <class T>
double Transformer<T>::model_flops_per_token(const config::ModelConfig& cfg, int seq_len) {
  // 6N: forward 2N, backward 4N multiply-adds (Kaplan et al. 2020, section 2.1); attention's
  // score and value products add 12 L T C per token (forward 4 L T C, backward 8).
  const double n = double(make_parameter_table(cfg).matmul_numel());
  return 6.0 * n + 12.0 * cfg.num_layers * double(seq_len) * cfg.d_model;
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace strata::model
