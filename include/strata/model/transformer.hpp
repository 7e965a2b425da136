// The configurable decoder transformer of DESIGN.md ("The model"): one chunk of it — a
// range of layers, with the embedding when it is the first chunk and the output layer and
// loss when it is the last — on one tensor-parallel rank.
//
//   x0 = wte[tokens] (+ wpe[t])
//   for each layer l:  h = x + Wo · attn(rope(Wq·n1(x)), rope(Wk·n1(x)), Wv·n1(x))
//                      x = h + mlp(n2(h))        mlp: Wproj·gelu(Wfc·) | Wdown·(silu(Wg·) * Wu·)
//   logits = lm_head(nf(x))   (lm_head = wte when embeddings are tied)
//   loss   = mean over target tokens of cross-entropy(logits, target)
//
// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019, section 3): Wq/Wk/Wv and the MLP's
// first projections are column-parallel (heads, KV heads and the hidden width split), Wo
// and the MLP's last projection row-parallel; the embedding and output tables are
// vocab-parallel and the loss is computed without gathering the logits. Communication in
// conjugate pairs:
//   entering a TP region   forward: identity (all-gather with SP)   backward: all-reduce (reduce-scatter with SP)
//   leaving a TP region    forward: all-reduce (reduce-scatter with SP)   backward: identity (all-gather with SP)
// Sequence parallelism (Korthikanti et al. 2022, section 4.2.2): the residual stream and
// the norms run on 1/tp of the rows; row r of the [B*T, C] stream belongs to TP rank
// r / (B*T/tp).
//
// Pipeline parallelism keeps several micro-batches in flight: each has an activation
// "slot". forward(slot) takes tokens (first chunk) or the previous stage's activation;
// loss(slot) runs the head (last chunk); backward(slot) takes the gradient of the output
// (or starts from the loss) and leaves the gradient of the input in input_grad().
//
// Every buffer — parameters, gradients, activations of every slot, backward work space —
// is planned in the constructor (MemoryPlan) and allocated in a few blocks; forward and
// backward never allocate. With recompute = full only each layer's input is kept, and the
// layer's forward is re-run inside the backward.
#pragma once
#include <climits>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "strata/comm/communicator.hpp"
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

template <class T>
class Transformer {
 public:
  // Plans and allocates every buffer for micro-batches of `batch` sequences of `seq_len`.
  // `tp` is the tensor-parallel group (null when placement.tp_size == 1).
  // allocate = false plans without allocating (the planner reads the memory tables).
  Transformer(const config::ModelConfig& cfg, int batch, int seq_len, const ChunkPlacement& placement = {},
              comm::Communicator* tp = nullptr, int slots = 1, bool allocate = true);

  // Draw every parameter from the counter-based RNG keyed by (seed, name, global index).
  void init_parameters(std::uint64_t seed);

  // --- one rank, whole model -------------------------------------------------------------
  // Loss only (evaluation): tokens and targets are [batch, seq_len] int32; target < 0 = no loss.
  LossSum forward(const std::int32_t* tokens, const std::int32_t* targets);
  // Forward and backward of one micro-batch; ACCUMULATES into grads() the gradient of
  // grad_scale * sum of the token losses (grad_scale = 1 / tokens in the global batch).
  LossSum forward_backward(const std::int32_t* tokens, const std::int32_t* targets, T grad_scale);

  // --- pipeline pieces ---------------------------------------------------------------------
  // tokens: [batch, seq_len] (first chunk: has_embedding), else input: [rows, C] activation.
  void forward_chunk(int slot, const std::int32_t* tokens, const T* input);
  const T* output(int slot) const;  // [rows, C], valid until the slot's next forward
  // Last chunk: head and loss; with_grad stores dlogits for backward_chunk.
  LossSum loss(int slot, const std::int32_t* targets, T grad_scale, bool with_grad);
  // After loss(..., with_grad = false): the logits [rows, V_local] of this rank's vocabulary
  // slice (V_local = padded vocabulary / tp; evaluation and tests). Valid until the next loss().
  const T* logits() const { return slots_.front().logits; }
  // output_grad: [rows, C] gradient of output(slot) (null on the last chunk: starts from the loss).
  void backward_chunk(int slot, const T* output_grad);
  const T* input_grad() const { return d_resid_; }  // after backward_chunk: [rows, C]
  std::int64_t activation_rows() const { return Nsp_; }  // rows of the exchanged [rows, C]

  // Called after each layer's backward with that layer's index (for bucketed gradient
  // reduction overlapped with the rest of backward); null by default.
  std::function<void(int layer)> on_layer_grads_ready;

  // Sequence-length warm-up: run micro-batches of `seq_len` <= the planned sequence length
  // (tokens, targets and the exchanged activations are then [batch, seq_len] / [rows, C] with
  // the rows of the shorter sequence). Every buffer keeps its planned size and the kernels use
  // its first rows; the result is the one of a model planned for `seq_len`. With sequence
  // parallelism batch x seq_len must stay divisible by tp.
  void set_seq_len(int seq_len);
  int seq_len() const { return T_; }
  int planned_seq_len() const { return Tmax_; }

  void zero_grads();
  // Sum over the TP group the gradients of replicated tensors that sequence parallelism
  // computes from sequence shards (norms, row-parallel biases), for the tensors starting in
  // the flat range [begin, end). Once per step per tensor, after its last micro-batch's
  // backward; no-op without sequence parallelism.
  void reduce_sequence_parallel_grads(std::int64_t begin = 0, std::int64_t end = INT64_MAX);
  std::span<T> params() { return {params_, size_t(table_.numel())}; }
  std::span<T> grads() { return {grads_, size_t(table_.numel())}; }
  T* param(const std::string& name) { return params_ + table_.get(name).offset; }
  T* grad(const std::string& name) { return grads_ + table_.get(name).offset; }
  const ParameterTable& table() const { return table_; }
  const config::ModelConfig& config() const { return cfg_; }
  const ChunkPlacement& placement() const { return place_; }
  const MemoryPlan& parameter_memory() const { return param_plan_; }
  const MemoryPlan& activation_memory() const { return act_plan_; }
  // Flat-buffer range [begin, end) of layer l's parameters (for gradient buckets).
  std::pair<std::int64_t, std::int64_t> layer_range(int layer) const;

  // Training FLOPs per token of the whole model (all ranks together): 6 N (N = parameters in
  // matmuls) + 12 L T C (attention); see docs/performance.md.
  static double model_flops_per_token(const config::ModelConfig& cfg, int seq_len);
  double model_flops_per_token() const { return model_flops_per_token(cfg_, T_); }

 private:
  // Pointers into one layer's parameters (or gradients: same offsets in the other buffer).
  struct LayerWeights {
    T *n1_w, *n1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *n2_w, *n2_b;
    T *w1, *b1, *w3, *b3, *w2, *b2;  // gelu: w1 = fc, w2 = proj; swiglu: w1 = gate, w3 = up, w2 = down
  };
  // Pointers into one layer's saved activations (for one slot).
  struct LayerActs {
    T *ln1_mean, *ln1_rstd, *ln1_full, *q, *k, *v, *att, *attn_y, *mid;
    T *ln2_mean, *ln2_rstd, *ln2_full, *fc, *up, *act;
  };
  struct SlotBuffers {
    std::vector<T*> resid;          // L_local + 1 residual streams [Nsp, C]
    std::vector<LayerActs> layers;  // per layer (all alias one set under recompute)
    T *lnf_mean, *lnf_rstd, *lnf_full, *logits, *losses;
    T* head_dx;  // gradient of the chunk's output, from the loss (last chunk)
    std::int32_t* tokens;
  };
  LayerWeights find_layer_weights(int l, T* base) const;
  void layer_forward(const SlotBuffers& s, int l);
  void layer_backward(const SlotBuffers& s, int l);
  void head_forward(const SlotBuffers& s);
  void head_backward(const SlotBuffers& s);
  void embed_forward(const SlotBuffers& s);
  void embed_backward(const SlotBuffers& s);
  // norm over the Nsp rows of x; the output lands in `full` (rows of this rank's block under
  // SP, then all-gathered), ready as the input of a column-parallel layer.
  void norm_into_full(T* full, T* mean, T* rstd, const T* x, const T* w, const T* b);
  void norm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean,
                     const T* rstd);
  // Leaving a TP region: partial [N, C] -> out [Nsp, C] (all-reduce, or reduce-scatter with SP).
  void reduce_from_tp(T* partial, T* out);
  // Entering a TP region backward: partial d of the full input -> d [Nsp, C].
  void reduce_grad_to_shard(T* partial_full, T* shard);
  // Leaving a TP region backward: d [Nsp, C] -> the full [N, C] gradient of the partials.
  const T* gather_grad_from_shard(const T* shard);

  config::ModelConfig cfg_;
  ChunkPlacement place_;
  comm::Communicator* tp_;
  int B_, T_, C_, NH_, NKV_, HS_, F_, V_, L_, Lfirst_;  // NH_, NKV_, F_, V_ are local (per TP rank)
  int Tmax_;                   // the planned sequence length (T_ <= Tmax_: set_seq_len)
  std::int64_t N_, Nsp_;       // B*T rows; rows of the residual stream on this rank
  std::int64_t vocab_start_, vocab_real_;
  bool sp_;
  ParameterTable table_;
  MemoryPlan param_plan_{"parameters"};
  MemoryPlan act_plan_{"activations"};
  T* params_ = nullptr;
  T* grads_ = nullptr;
  std::vector<LayerWeights> w_, g_;  // per local layer: parameters, gradients
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_ranges_;  // per local layer: flat range
  std::vector<SlotBuffers> slots_;
  T *wte_ = nullptr, *dwte_ = nullptr, *wpe_ = nullptr, *dwpe_ = nullptr, *head_w_ = nullptr,
    *dhead_w_ = nullptr, *nf_w_ = nullptr, *nf_b_ = nullptr, *dnf_w_ = nullptr, *dnf_b_ = nullptr;
  // work space shared by all slots and layers
  T *d_resid_{}, *d_ln_{}, *d_full_{}, *d_attn_y_{}, *d_q_{}, *d_k_{}, *d_v_{}, *d_fc_{}, *d_up_{}, *d_act_{},
      *att_scratch_{}, *partial_{}, *ce_max_{}, *ce_sum_{}, *ce_target_{};
};

extern template class Transformer<float>;
extern template class Transformer<double>;

}  // namespace strata::model
