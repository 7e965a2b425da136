// The transformer's forward and backward on one rank; see transformer.hpp for the math.
#include "strata/model/transformer.hpp"

#include <array>
#include <cmath>
#include <string>

#include "strata/core/rng.hpp"
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

ParameterTable make_parameter_table(const config::ModelConfig& cfg) {
  const std::int64_t C = cfg.d_model, V = cfg.vocab_size, F = cfg.ffn();
  const std::int64_t HS = cfg.head_size(), Q = cfg.num_heads * HS, KV = cfg.kv_heads() * HS;
  const double std0 = cfg.init_std;
  // GPT-2: residual-branch output projections scaled by 1/sqrt(2 L) so the residual stream's
  // variance does not grow with depth (Radford et al. 2019, section 2.3).
  const double std_out = cfg.init_std / std::sqrt(2.0 * cfg.num_layers);
  const bool ln = cfg.norm == NormKind::layernorm;
  ParameterTable t;
  auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in, double sd) {
    t.add(name + ".weight", {out, in}, ParamKind::matrix, sd, true);
    if (cfg.bias) t.add(name + ".bias", {out}, ParamKind::bias, 0.0, false);
  };
  auto norm = [&](const std::string& name) {
    t.add(name + ".weight", {C}, ParamKind::norm, 0.0, false);
    if (ln && cfg.bias) t.add(name + ".bias", {C}, ParamKind::bias, 0.0, false);
  };
  t.add("embed.wte", {V, C}, ParamKind::embedding, std0, cfg.tied_embeddings);
  if (cfg.positions == PositionKind::learned)
    t.add("embed.wpe", {cfg.max_seq_len, C}, ParamKind::embedding, std0, false);
  for (int l = 0; l < cfg.num_layers; ++l) {
    norm(layer_name(l, "attn_norm"));
    linear(layer_name(l, "attn.wq"), Q, C, std0);
    linear(layer_name(l, "attn.wk"), KV, C, std0);
    linear(layer_name(l, "attn.wv"), KV, C, std0);
    linear(layer_name(l, "attn.wo"), C, Q, std_out);
    norm(layer_name(l, "mlp_norm"));
    if (cfg.mlp == MlpKind::gelu) {
      linear(layer_name(l, "mlp.fc"), F, C, std0);
      linear(layer_name(l, "mlp.proj"), C, F, std_out);
    } else {
      linear(layer_name(l, "mlp.gate"), F, C, std0);
      linear(layer_name(l, "mlp.up"), F, C, std0);
      linear(layer_name(l, "mlp.down"), C, F, std_out);
    }
  }
  norm("final_norm");
  if (!cfg.tied_embeddings) t.add("lm_head.weight", {V, C}, ParamKind::matrix, std0, true);
  return t;
}

template <class T>
Transformer<T>::Transformer(const config::ModelConfig& cfg, int batch, int seq_len)
    : cfg_(cfg), B_(batch), T_(seq_len), C_(cfg.d_model), NH_(cfg.num_heads), NKV_(cfg.kv_heads()),
      HS_(cfg.head_size()), F_(cfg.ffn()), V_(cfg.vocab_size), L_(cfg.num_layers),
      N_(std::int64_t(batch) * seq_len), table_(make_parameter_table(cfg)) {
  STRATA_CHECK(seq_len <= cfg.max_seq_len, "sequence length ", seq_len,
               " exceeds model.max_seq_len ", cfg.max_seq_len);
  const DType dt = dtype_of<T>();
  param_plan_.add("params", {table_.numel()}, dt, "persistent");
  param_plan_.add("grads", {table_.numel()}, dt, "persistent");
  param_plan_.allocate();
  params_ = param_plan_.data<T>(0);
  grads_ = param_plan_.data<T>(1);
  for (int l = 0; l < L_; ++l) {
    w_.push_back(find_layer_weights(l, params_));
    g_.push_back(find_layer_weights(l, grads_));
  }
  auto offset_of = [&](const char* name) -> std::int64_t {
    for (const auto& p : table_.entries())
      if (p.name == name) return p.offset;
    return -1;
  };
  auto pair = [&](const char* name, T*& w, T*& g) {
    const std::int64_t o = offset_of(name);
    w = o < 0 ? nullptr : params_ + o;
    g = o < 0 ? nullptr : grads_ + o;
  };
  pair("embed.wte", wte_, dwte_);
  pair("embed.wpe", wpe_, dwpe_);
  pair(cfg.tied_embeddings ? "embed.wte" : "lm_head.weight", head_w_, dhead_w_);
  pair("final_norm.weight", nf_w_, dnf_w_);
  pair("final_norm.bias", nf_b_, dnf_b_);

  // Activations: the residual stream of every layer is kept (it is each layer's input);
  // the rest per layer, or one shared set under full recomputation.
  const std::int64_t N = N_, Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  const bool swiglu = cfg.mlp == MlpKind::swiglu;
  std::vector<std::size_t> resid_idx;
  for (int l = 0; l <= L_; ++l)
    resid_idx.push_back(act_plan_.add("resid." + std::to_string(l), {N, C_}, dt, "step"));
  const bool shared = cfg.recompute == config::RecomputeKind::full;
  const int sets = shared ? 1 : L_;
  std::vector<std::array<std::size_t, 15>> set_idx;
  for (int s = 0; s < sets; ++s) {
    const std::string p = shared ? "layer*." : "layers." + std::to_string(s) + ".";
    const char* life = shared ? "layer" : "step";
    auto add = [&](const char* n, Shape sh) { return act_plan_.add(p + n, std::move(sh), dt, life); };
    std::array<std::size_t, 15> a{};
    a[0] = add("ln1", {N, C_});
    a[1] = add("ln1_mean", {N});
    a[2] = add("ln1_rstd", {N});
    a[3] = add("q", {N, Q});
    a[4] = add("k", {N, KV});
    a[5] = add("v", {N, KV});
    a[6] = add("att", {B_, NH_, T_, T_});
    a[7] = add("attn_y", {N, Q});
    a[8] = add("mid", {N, C_});
    a[9] = add("ln2", {N, C_});
    a[10] = add("ln2_mean", {N});
    a[11] = add("ln2_rstd", {N});
    a[12] = add(swiglu ? "gate" : "fc", {N, F_});
    a[13] = swiglu ? add("up", {N, F_}) : a[12];
    a[14] = add("act", {N, F_});
    set_idx.push_back(a);
  }
  auto add_step = [&](const char* n, Shape sh, const char* life = "step", DType d = DType::f32) {
    return act_plan_.add(n, std::move(sh), d == DType::i32 ? d : dt, life);
  };
  const auto i_lnf = add_step("final_norm", {N, C_});
  const auto i_lnf_mean = add_step("final_norm_mean", {N});
  const auto i_lnf_rstd = add_step("final_norm_rstd", {N});
  const auto i_logits = add_step("logits", {N, V_});
  const auto i_losses = add_step("losses", {N});
  const auto i_tokens = add_step("tokens", {N}, "step", DType::i32);
  const auto i_d_resid = add_step("grad.resid", {N, C_}, "backward");
  const auto i_d_ln = add_step("grad.ln", {N, C_}, "backward");
  const auto i_d_attn_y = add_step("grad.attn_y", {N, Q}, "backward");
  const auto i_d_q = add_step("grad.q", {N, Q}, "backward");
  const auto i_d_k = add_step("grad.k", {N, KV}, "backward");
  const auto i_d_v = add_step("grad.v", {N, KV}, "backward");
  const auto i_d_fc = add_step(swiglu ? "grad.gate" : "grad.fc", {N, F_}, "backward");
  const auto i_d_up = swiglu ? add_step("grad.up", {N, F_}, "backward") : i_d_fc;
  const auto i_d_act = add_step("grad.act", {N, F_}, "backward");
  const auto i_scratch = add_step("grad.att_scratch", {T_, T_}, "backward");
  act_plan_.allocate();

  auto P = [&](std::size_t i) { return act_plan_.data<T>(i); };
  for (auto i : resid_idx) resid_.push_back(P(i));
  for (int l = 0; l < L_; ++l) {
    const auto& a = set_idx[shared ? 0 : std::size_t(l)];
    acts_.push_back({P(a[0]), P(a[1]), P(a[2]), P(a[3]), P(a[4]), P(a[5]), P(a[6]), P(a[7]),
                     P(a[8]), P(a[9]), P(a[10]), P(a[11]), P(a[12]), P(a[13]), P(a[14])});
  }
  lnf_ = P(i_lnf);
  lnf_mean_ = P(i_lnf_mean);
  lnf_rstd_ = P(i_lnf_rstd);
  logits_ = P(i_logits);
  losses_ = P(i_losses);
  tokens_ = act_plan_.data<std::int32_t>(i_tokens);
  d_resid_ = P(i_d_resid);
  d_ln_ = P(i_d_ln);
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
    const std::string name = layer_name(l, rest);
    for (const auto& p : table_.entries())
      if (p.name == name) return base + p.offset;
    return nullptr;  // absent (no bias, or the other MLP kind)
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
  w.b1 = at("mlp.fc.bias");
  w.w3 = at("mlp.up.weight");
  w.w2 = at(gelu ? "mlp.proj.weight" : "mlp.down.weight");
  w.b2 = at(gelu ? "mlp.proj.bias" : "mlp.down.bias");
  return w;
}

template <class T>
void Transformer<T>::init_parameters(std::uint64_t seed) {
  for (const ParamInfo& p : table_.entries()) {
    T* w = params_ + p.offset;
    if (p.init_std == 0.0) {
      k::fill(w, T(p.kind == ParamKind::norm ? 1 : 0), p.numel);
      continue;
    }
    // Element i of the *global* tensor: a shard maps its local index to the global one
    // (identity while this rank holds the whole tensor), so every layout draws the same.
    const core::CounterRng rng(seed, p.name);
    for (std::int64_t i = 0; i < p.numel; ++i) w[i] = T(p.init_std * rng.normal(std::uint64_t(i)));
  }
}

template <class T>
void Transformer<T>::zero_grads() {
  k::fill(grads_, T(0), table_.numel());
}

// ---- forward -------------------------------------------------------------------------

template <class T>
void Transformer<T>::embed(const std::int32_t* tokens) {
  for (std::int64_t i = 0; i < N_; ++i) {
    STRATA_CHECK(tokens[i] >= 0 && tokens[i] < V_, "token id ", tokens[i], " at position ", i,
                 " is outside the vocabulary [0, ", V_, ")");
    tokens_[i] = tokens[i];
  }
  k::embedding_forward(resid_[0], tokens_, wte_, N_, C_, 0, V_);
  if (wpe_) k::position_embedding_forward(resid_[0], wpe_, B_, T_, C_);
}

template <class T>
void Transformer<T>::layer_forward(int l) {
  const LayerWeights& w = w_[std::size_t(l)];
  const LayerActs& a = acts_[std::size_t(l)];
  const T* x = resid_[std::size_t(l)];
  T* out = resid_[std::size_t(l) + 1];
  const std::int64_t Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  const T eps = T(cfg_.norm_eps);
  const bool rms = cfg_.norm == NormKind::rmsnorm;
  auto norm = [&](T* y, T* mean, T* rstd, const T* in, const T* g, const T* b) {
    if (rms) k::rmsnorm_forward(y, rstd, in, g, N_, C_, eps);
    else k::layernorm_forward(y, mean, rstd, in, g, b, N_, C_, eps);
  };
  // attention block
  norm(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.n1_w, w.n1_b);
  k::linear_forward(a.q, a.ln1, w.wq, w.bq, N_, C_, Q);
  k::linear_forward(a.k, a.ln1, w.wk, w.bk, N_, C_, KV);
  k::linear_forward(a.v, a.ln1, w.wv, w.bv, N_, C_, KV);
  if (cfg_.positions == PositionKind::rope) {
    k::rope_forward(a.q, B_, T_, NH_, HS_, cfg_.rope_theta);
    k::rope_forward(a.k, B_, T_, NKV_, HS_, cfg_.rope_theta);
  }
  const k::AttentionShape shape{B_, T_, NH_, NKV_, HS_, Q, KV,
                                cfg_.attention == config::AttentionKind::causal};
  k::attention_forward(a.attn_y, a.att, a.q, a.k, a.v, shape);
  k::linear_forward(a.mid, a.attn_y, w.wo, w.bo, N_, Q, C_);
  k::accumulate(a.mid, x, N_ * C_);  // mid = x + attn
  // MLP block
  norm(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.n2_w, w.n2_b);
  k::linear_forward(a.fc, a.ln2, w.w1, w.b1, N_, C_, F_);
  if (cfg_.mlp == MlpKind::gelu) {
    k::gelu_forward(a.act, a.fc, N_ * F_);
  } else {
    k::linear_forward(a.up, a.ln2, w.w3, static_cast<const T*>(nullptr), N_, C_, F_);
    k::swiglu_forward(a.act, a.fc, a.up, N_ * F_);
  }
  k::linear_forward(out, a.act, w.w2, w.b2, N_, F_, C_);
  k::accumulate(out, a.mid, N_ * C_);  // out = mid + mlp
}

template <class T>
void Transformer<T>::head_forward() {
  const T* x = resid_[std::size_t(L_)];
  if (cfg_.norm == NormKind::rmsnorm)
    k::rmsnorm_forward(lnf_, lnf_rstd_, x, nf_w_, N_, C_, T(cfg_.norm_eps));
  else
    k::layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, x, nf_w_, nf_b_, N_, C_, T(cfg_.norm_eps));
  k::linear_forward(logits_, lnf_, head_w_, static_cast<const T*>(nullptr), N_, C_, V_);
}

template <class T>
LossSum Transformer<T>::head_loss(const std::int32_t* targets, bool with_grad, T grad_scale) {
  for (std::int64_t i = 0; i < N_; ++i)
    STRATA_CHECK(targets[i] < V_, "target id ", targets[i], " at position ", i,
                 " is outside the vocabulary [0, ", V_, ")");
  if (with_grad)
    k::cross_entropy_fused(logits_, losses_, targets, grad_scale, N_, V_, V_);
  else
    k::cross_entropy_forward(losses_, logits_, targets, N_, V_, V_);
  LossSum s;
  for (std::int64_t i = 0; i < N_; ++i) {
    if (targets[i] < 0) continue;
    s.sum += double(losses_[i]);
    ++s.count;
  }
  return s;
}

template <class T>
LossSum Transformer<T>::forward(const std::int32_t* tokens, const std::int32_t* targets) {
  embed(tokens);
  for (int l = 0; l < L_; ++l) layer_forward(l);
  head_forward();
  return head_loss(targets, false, T(0));
}

// ---- backward ------------------------------------------------------------------------

template <class T>
void Transformer<T>::layer_backward(int l) {
  const LayerWeights& w = w_[std::size_t(l)];
  const LayerWeights& g = g_[std::size_t(l)];
  const LayerActs& a = acts_[std::size_t(l)];
  const T* x = resid_[std::size_t(l)];
  const std::int64_t Q = std::int64_t(NH_) * HS_, KV = std::int64_t(NKV_) * HS_;
  const bool rms = cfg_.norm == NormKind::rmsnorm;
  auto norm_backward = [&](T* dx, T* dw, T* db, const T* dy, const T* in, const T* gw,
                           const T* mean, const T* rstd) {
    if (rms) k::rmsnorm_backward(dx, dw, dy, in, gw, rstd, N_, C_);
    else k::layernorm_backward(dx, dw, db, dy, in, gw, mean, rstd, N_, C_);
  };
  // d_resid holds dL/d(out). out = mid + mlp(n2(mid)): the identity path leaves d_resid as
  // the first part of dL/d(mid); the MLP path is accumulated into it by the norm backward.
  k::fill(d_act_, T(0), N_ * F_);
  k::linear_backward(d_act_, g.w2, g.b2, d_resid_, a.act, w.w2, N_, F_, C_);
  k::fill(d_fc_, T(0), N_ * F_);
  if (cfg_.mlp == MlpKind::gelu) {
    k::gelu_backward(d_fc_, d_act_, a.fc, N_ * F_);
  } else {
    k::fill(d_up_, T(0), N_ * F_);
    k::swiglu_backward(d_fc_, d_up_, d_act_, a.fc, a.up, N_ * F_);
  }
  k::fill(d_ln_, T(0), N_ * C_);
  k::linear_backward(d_ln_, g.w1, g.b1, d_fc_, a.ln2, w.w1, N_, C_, F_);
  if (cfg_.mlp == MlpKind::swiglu)
    k::linear_backward(d_ln_, g.w3, static_cast<T*>(nullptr), d_up_, a.ln2, w.w3, N_, C_, F_);
  norm_backward(d_resid_, g.n2_w, g.n2_b, d_ln_, a.mid, w.n2_w, a.ln2_mean, a.ln2_rstd);
  // mid = x + Wo attn(...): likewise d_resid becomes dL/dx.
  k::fill(d_attn_y_, T(0), N_ * Q);
  k::linear_backward(d_attn_y_, g.wo, g.bo, d_resid_, a.attn_y, w.wo, N_, Q, C_);
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
  k::fill(d_ln_, T(0), N_ * C_);
  k::linear_backward(d_ln_, g.wq, g.bq, d_q_, a.ln1, w.wq, N_, C_, Q);
  k::linear_backward(d_ln_, g.wk, g.bk, d_k_, a.ln1, w.wk, N_, C_, KV);
  k::linear_backward(d_ln_, g.wv, g.bv, d_v_, a.ln1, w.wv, N_, C_, KV);
  norm_backward(d_resid_, g.n1_w, g.n1_b, d_ln_, x, w.n1_w, a.ln1_mean, a.ln1_rstd);
}

template <class T>
void Transformer<T>::embed_backward() {
  k::embedding_backward(dwte_, d_resid_, tokens_, N_, C_, 0, V_);
  if (dwpe_) k::position_embedding_backward(dwpe_, d_resid_, B_, T_, C_);
}

template <class T>
LossSum Transformer<T>::forward_backward(const std::int32_t* tokens, const std::int32_t* targets,
                                         T grad_scale) {
  embed(tokens);
  for (int l = 0; l < L_; ++l) layer_forward(l);
  head_forward();
  const LossSum loss = head_loss(targets, true, grad_scale);  // logits now hold dlogits
  // head: logits = nf(x) W^T
  k::fill(d_ln_, T(0), N_ * C_);
  k::linear_backward(d_ln_, dhead_w_, static_cast<T*>(nullptr), logits_, lnf_, head_w_, N_, C_, V_);
  k::fill(d_resid_, T(0), N_ * C_);
  const T* xL = resid_[std::size_t(L_)];
  if (cfg_.norm == NormKind::rmsnorm)
    k::rmsnorm_backward(d_resid_, dnf_w_, d_ln_, xL, nf_w_, lnf_rstd_, N_, C_);
  else
    k::layernorm_backward(d_resid_, dnf_w_, dnf_b_, d_ln_, xL, nf_w_, lnf_mean_, lnf_rstd_, N_, C_);
  const bool recompute = cfg_.recompute == config::RecomputeKind::full;
  for (int l = L_ - 1; l >= 0; --l) {
    if (recompute) layer_forward(l);  // rebuild this layer's activations from its input
    layer_backward(l);
  }
  embed_backward();
  return loss;
}

template <class T>
double Transformer<T>::model_flops_per_token() const {
  // 6N: forward 2N, backward 4N multiply-adds (Kaplan et al. 2020, section 2.1); attention's
  // score and value products add 12 L T C per token (forward 4 L T C, backward 8).
  return 6.0 * double(table_.matmul_numel()) + 12.0 * L_ * double(T_) * C_;
}

template <class T>
double Transformer<T>::hardware_flops_per_token() const {
  const double fwd = 2.0 * double(table_.matmul_numel()) + 4.0 * L_ * double(T_) * C_;
  return model_flops_per_token() + (cfg_.recompute == config::RecomputeKind::full ? fwd : 0.0);
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace strata::model
