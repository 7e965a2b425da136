// The configurable decoder transformer of DESIGN.md ("The model"), one rank, CPU.
//
//   x0 = wte[tokens] (+ wpe[t])
//   for each layer l:  h = x + Wo · attn(rope(Wq·n1(x)), rope(Wk·n1(x)), Wv·n1(x))
//                      x = h + mlp(n2(h))        mlp: Wproj·gelu(Wfc·) | Wdown·(silu(Wg·) * Wu·)
//   logits = lm_head(nf(x))   (lm_head = wte when embeddings are tied)
//   loss   = mean over target tokens of cross-entropy(logits, target)
//
// Shapes use the glossary of kernels/cpu/common.hpp. Every buffer — parameters, gradients,
// activations, backward work space — is planned once in the constructor (MemoryPlan) and
// allocated in a few blocks; forward/backward never allocate. With recompute = full only
// each layer's input is kept, and the layer's forward is re-run inside the backward.
#pragma once
#include <cstdint>
#include <ostream>
#include <span>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/parameters.hpp"

namespace strata::model {

// The summed loss of a micro-batch and how many target tokens it covered.
struct LossSum {
  double sum = 0;
  std::int64_t count = 0;
  double mean() const { return count ? sum / double(count) : 0.0; }
};

// Build the parameter table for a model config (names, shapes, init) without allocating.
ParameterTable make_parameter_table(const config::ModelConfig& cfg);

template <class T>
class Transformer {
 public:
  // Plans and allocates every buffer for micro-batches of `batch` sequences of `seq_len`.
  Transformer(const config::ModelConfig& cfg, int batch, int seq_len);

  // Draw every parameter from the counter-based RNG keyed by (seed, name, global index).
  void init_parameters(std::uint64_t seed);

  // Loss only (evaluation): tokens and targets are [batch, seq_len] int32; target < 0 = no loss.
  LossSum forward(const std::int32_t* tokens, const std::int32_t* targets);

  // Forward and backward of one micro-batch; ACCUMULATES into grads() the gradient of
  // grad_scale * sum of the token losses (grad_scale = 1 / tokens in the global batch).
  LossSum forward_backward(const std::int32_t* tokens, const std::int32_t* targets, T grad_scale);

  void zero_grads();
  std::span<T> params() { return {params_, size_t(table_.numel())}; }
  std::span<T> grads() { return {grads_, size_t(table_.numel())}; }
  T* param(const std::string& name) { return params_ + table_.get(name).offset; }
  T* grad(const std::string& name) { return grads_ + table_.get(name).offset; }
  const ParameterTable& table() const { return table_; }
  const config::ModelConfig& config() const { return cfg_; }
  const MemoryPlan& parameter_memory() const { return param_plan_; }
  const MemoryPlan& activation_memory() const { return act_plan_; }

  // Training FLOPs per token: 6 N (N = parameters in matmuls) + 12 L T C (attention), and
  // 8 N + ... with full recomputation (one more forward). See docs/performance.md.
  double model_flops_per_token() const;
  double hardware_flops_per_token() const;  // what this run executes (recompute included)

 private:
  // Pointers into one layer's parameters (or gradients: same offsets in the other buffer).
  struct LayerWeights {
    T *n1_w, *n1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *n2_w, *n2_b;
    T *w1, *b1, *w3, *w2, *b2;  // gelu: w1 = fc, w2 = proj; swiglu: w1 = gate, w3 = up, w2 = down
  };
  // Pointers into one layer's saved activations.
  struct LayerActs {
    T *ln1, *ln1_mean, *ln1_rstd, *q, *k, *v, *att, *attn_y, *mid, *ln2, *ln2_mean, *ln2_rstd;
    T *fc, *up, *act;
  };
  LayerWeights find_layer_weights(int l, T* base) const;
  void embed(const std::int32_t* tokens);
  void layer_forward(int l);
  void layer_backward(int l);
  void head_forward();
  LossSum head_loss(const std::int32_t* targets, bool with_grad, T grad_scale);
  void embed_backward();

  config::ModelConfig cfg_;
  int B_, T_, C_, NH_, NKV_, HS_, F_, V_, L_;
  std::int64_t N_;  // B*T rows
  ParameterTable table_;
  MemoryPlan param_plan_{"parameters"};
  MemoryPlan act_plan_{"activations"};
  T* params_ = nullptr;
  T* grads_ = nullptr;
  // Resolved once after allocation, so the step never searches or allocates.
  std::vector<LayerWeights> w_, g_;     // per layer: parameters, gradients
  std::vector<LayerActs> acts_;         // per layer (recompute: all alias one set)
  std::vector<T*> resid_;               // L+1 residual streams [N, C]
  T *wte_, *dwte_, *wpe_ = nullptr, *dwpe_ = nullptr, *head_w_, *dhead_w_;
  T *nf_w_, *nf_b_, *dnf_w_, *dnf_b_;
  T *lnf_, *lnf_mean_, *lnf_rstd_, *logits_, *losses_;
  std::int32_t* tokens_;
  // backward work space, shared by all layers
  T *d_resid_, *d_ln_, *d_attn_y_, *d_q_, *d_k_, *d_v_, *d_fc_, *d_up_, *d_act_, *att_scratch_;
};

extern template class Transformer<float>;
extern template class Transformer<double>;

}  // namespace strata::model
