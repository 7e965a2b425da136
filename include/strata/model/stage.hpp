// One stage of the configurable decoder transformer of DESIGN.md ("The model"), written once
// over a backend (backend.hpp): a range of layers, with the embedding when it is the first
// chunk and the output layer and loss when it is the last, on one tensor-parallel rank.
//
//   x0 = wte[tokens] (+ wpe[t])
//   for each layer l:  h = x + Wo · attn(rope(Wq·n1(x)), rope(Wk·n1(x)), Wv·n1(x)) (+ bo)
//                      x = h + mlp(n2(h))        mlp: Wproj·gelu(Wfc·) | Wdown·(silu(Wg·) * Wu·)
//   logits = lm_head(nf(x))   (lm_head = wte when embeddings are tied)
//   loss   = mean over target tokens of cross-entropy(logits, target)
//
// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019, section 3): Wq/Wk/Wv and the MLP's
// first projections are column-parallel (heads, KV heads and the hidden width split), Wo
// and the MLP's last projection row-parallel (their bias added once, after the reduction);
// the embedding and output tables are vocab-parallel and the loss is computed without
// gathering the logits. Communication in conjugate pairs:
//   entering a TP region   forward: identity (all-gather with SP)   backward: all-reduce (reduce-scatter with
//   SP) leaving a TP region    forward: all-reduce (reduce-scatter with SP)   backward: identity (all-gather
//   with SP)
// Sequence parallelism (Korthikanti et al. 2022, section 4.2.2): the residual stream and the
// norms run on 1/tp of the rows; row r of the [B*T, C] stream belongs to TP rank r / (B*T/tp).
// The gradients of the replicated tensors computed from those row shards (norms,
// row-parallel biases) are summed over TP once per step (reduce_sequence_parallel_grads).
//
// Pipeline parallelism keeps several micro-batches in flight: each has an activation
// "slot". forward_chunk(slot) takes tokens (first chunk) or the previous stage's activation;
// loss(slot) runs the head (last chunk) and, with a gradient, its backward right away so one
// logits buffer serves every slot; backward_chunk(slot) takes the gradient of the output (or
// starts from the loss's) and leaves the gradient of the input in input_grad().
//
// Precision is the backend's: its Act type for activations and the weights the kernels read,
// Grad for the weight gradients and the residual-stream gradient (the norm backwards add into
// it, so it sums over layers without Act rounding), Stat for statistics and losses. On the
// CPU all three are T; on the GPU bf16, fp32, fp32.
//
// Inference (StageMode::inference, the decoder of decoder.hpp): the same layer code on one
// sequence, with each layer's keys and values written into a cache at positions
// pos .. pos + n - 1 and the attention reading the cache (forward_cached).
//
// Every buffer is planned by StagePlan (stage_plan.hpp) and allocated by the backend in a few
// blocks at construction; forward and backward never allocate. With recompute = full only
// each layer's input is kept and the layer's forward is re-run inside the backward.
#pragma once
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/config/config.hpp"
#include "strata/model/backend.hpp"
#include "strata/model/parameters.hpp"
#include "strata/model/stage_plan.hpp"

namespace strata::model {

// The summed loss of a micro-batch and how many target tokens it covered.
struct LossSum {
  double sum = 0;
  std::int64_t count = 0;
  double mean() const { return count ? sum / double(count) : 0.0; }
};

// Training FLOPs per token of the whole model (all ranks together): 6 N (N = parameters in
// matmuls) + 12 L T C (attention); see docs/performance.md.
double model_flops_per_token(const config::ModelConfig& cfg, int seq_len);

template <class B>
class Stage {
 public:
  using A = typename B::Act;
  using G = typename B::Grad;
  using S = typename B::Stat;
  using H = typename B::Host;

  // Plans and allocates every buffer for micro-batches of `batch` sequences of `seq_len`
  // (inference: a cache of seq_len positions, batch 1). `tp` is the tensor-parallel group
  // (null when placement.tp_size == 1), on the backend's device. `backend` outlives the stage;
  // null: a stage-owned default backend (the CPU's, which has no state).
  Stage(const config::ModelConfig& cfg, int batch, int seq_len, const ChunkPlacement& placement = {},
        comm::Communicator* tp = nullptr, int slots = 1, B* backend = nullptr,
        StageMode mode = StageMode::train);
  ~Stage();
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  // Draw every parameter from the counter-based RNG keyed by (seed, name, global index)
  // (init_parameter_values) into the compute copy.
  void init_parameters(std::uint64_t seed);
  // Set the compute copy from host values in the table's flat layout (every element).
  void upload_parameters(const H* host);
  // The compute copy as host values (every element of the table).
  void download_parameters(H* host) const;

  // --- one rank, whole model -------------------------------------------------------------
  // Loss only (evaluation): tokens and targets are host [batch, seq_len] int32; target < 0 = no loss.
  LossSum forward(const std::int32_t* tokens, const std::int32_t* targets);
  // Forward and backward of one micro-batch; ACCUMULATES into grads() the gradient of
  // grad_scale * sum of the token losses (grad_scale = 1 / tokens in the global batch).
  LossSum forward_backward(const std::int32_t* tokens, const std::int32_t* targets, S grad_scale);

  // --- pipeline pieces ---------------------------------------------------------------------
  // tokens: host [batch, seq_len] (first chunk: has_embedding), else input: [rows, C] activation
  // in backend memory.
  void forward_chunk(int slot, const std::int32_t* tokens, const A* input);
  const A* output(int slot) const;  // [rows, C], valid until the slot's next forward
  // Last chunk: head and loss of host targets; with_grad also runs the head's backward (the
  // gradient of the chunk's output is kept in the slot for backward_chunk). The per-row losses
  // are downloaded into host_losses [rows] in stream order: valid after the backend's
  // synchronize() (CPU: at once).
  void loss_into(int slot, const std::int32_t* targets, S grad_scale, bool with_grad, H* host_losses);
  // loss_into, then synchronize and sum the losses of the rows with a target.
  LossSum loss(int slot, const std::int32_t* targets, S grad_scale, bool with_grad);
  // After loss(..., with_grad = false): the logits [rows, V_local] of this rank's vocabulary
  // slice (V_local = padded vocabulary / tp), in backend memory. Valid until the next loss().
  const A* logits() const;
  // output_grad: [rows, C] gradient of output(slot) in backend memory (null on the last chunk:
  // starts from the loss).
  void backward_chunk(int slot, const G* output_grad);
  const G* input_grad() const { return d_resid_; }  // after backward_chunk: [rows, C]
  // backward_chunk in two passes, for zb_h1 (placement().split_backward; Qi et al. 2023): the
  // B pass leaves input_grad() as backward_chunk does and adds the gradients of the norms, the
  // row-parallel biases and the embedding; the W pass of the slot then adds every weight
  // GEMM's (dW += dY^T X) and the column-parallel biases from what B kept (the GEMM inputs,
  // the output gradients: stage_split_impl.hpp), calling on_layer_grads_ready per layer.
  void backward_input_chunk(int slot, const G* output_grad);
  void backward_weight_chunk(int slot);
  std::int64_t activation_rows() const { return d_.Nsp; }  // rows of the exchanged [rows, C]

  // --- inference ---------------------------------------------------------------------------
  // n host tokens at positions pos .. pos + n - 1 through every layer (keys and values into the
  // cache), then the head on the last `rows` rows: their logits [rows, V_local] in logits().
  void forward_cached(const std::int32_t* tokens, int n, int pos, int rows);
  // Then every TP rank's logits of those rows, gathered into [tp, rows, V_local] (collective
  // over the TP group; logits() itself when tp == 1).
  const A* gathered_logits(int rows);

  // Called after each layer's backward with that layer's global index (for bucketed gradient
  // reduction overlapped with the rest of backward); null by default.
  std::function<void(int layer)> on_layer_grads_ready;
  // Called before each layer's backward (ZeRO-2: the engine binds the layer's gradients to a
  // reduction buffer here; ZeRO-3: the layer's gathered parameters), in backward_chunk and in
  // zb_h1's B pass (backward_input_chunk); null by default.
  std::function<void(int layer)> on_layer_backward_begin;
  // Called before each layer's W pass in backward_weight_chunk (zb_h1 with ZeRO-2/3: the engine
  // binds the layer's gradients to a reduction buffer here; W reads no parameters, so ZeRO-3
  // gathers none for it); null by default.
  std::function<void(int layer)> on_layer_weight_begin;
  // Called before each layer's forward in forward_chunk (ZeRO-3: the engine binds the layer's
  // gathered parameters here); null by default.
  std::function<void(int layer)> on_layer_forward_begin;
  // ZeRO-2 (placement().sharded_grads): the gradients of layer `layer` are written at
  // base + offset; those around the layers (embedding, final norm, head) into `edges`, the
  // tensors before flat offset prefix_end at edges + offset, the rest at
  // edges + prefix_end + (offset - suffix_begin).
  void bind_layer_grads(int layer, G* base);
  void bind_edge_grads(G* edges, std::int64_t prefix_end, std::int64_t suffix_begin);
  // ZeRO-3 (placement().sharded_params): the same for the parameters' compute copy.
  void bind_layer_params(int layer, A* base);
  void bind_edge_params(A* edges, std::int64_t prefix_end, std::int64_t suffix_begin);

  // Sequence-length warm-up: run micro-batches of `seq_len` <= the planned sequence length.
  // Every buffer keeps its planned size and the kernels use its first rows; the result is the
  // one of a stage planned for `seq_len`. With sequence parallelism batch x seq_len must stay
  // divisible by tp.
  void set_seq_len(int seq_len);
  int seq_len() const { return d_.T; }
  int planned_seq_len() const { return plan_.dims.T; }

  void zero_grads();
  // Sum over the TP group the gradients of replicated tensors that sequence parallelism
  // computes from sequence shards (norms, row-parallel biases), for the tensors starting in
  // the flat range [begin, end). Once per step per tensor, after its last micro-batch's
  // backward; no-op without sequence parallelism.
  void reduce_sequence_parallel_grads(std::int64_t begin = 0, std::int64_t end = INT64_MAX);
  // Context parallelism (placement().cp_size > 1): the ring of cp ranks this stage's
  // attention exchanges K/V blocks with (ring_attention_impl.hpp), set once by the engine; and
  // the sum over it of the gradients in the flat range [begin, end) (each cp rank computed them
  // from its part of the sequences), after their last micro-batch's backward, before DP.
  void set_context_parallel_group(comm::Communicator* cp) { cp_ = cp; }
  void reduce_context_parallel_grads(std::int64_t begin = 0, std::int64_t end = INT64_MAX);
  // The same over gradients addressed as base + offset (ZeRO-2's reduction buffers).
  void reduce_sequence_parallel_grads_at(G* base, std::int64_t begin, std::int64_t end);
  void reduce_context_parallel_grads_at(G* base, std::int64_t begin, std::int64_t end);

  // The flat buffers (backend memory): the compute copy of the parameters and their gradients.
  std::span<A> params() { return {params_, std::size_t(plan_.table.numel())}; }
  std::span<G> grads() { return {grads_, std::size_t(plan_.table.numel())}; }
  A* param(const std::string& name) { return params_ + table().get(name).offset; }
  G* grad(const std::string& name) { return grads_ + table().get(name).offset; }
  const ParameterTable& table() const { return plan_.table; }
  const config::ModelConfig& config() const { return plan_.cfg; }
  const ChunkPlacement& placement() const { return plan_.place; }
  const StagePlan& plan() const { return plan_; }
  const MemoryPlan& parameter_memory() const { return plan_.weights; }
  const MemoryPlan& activation_memory() const { return plan_.acts; }
  B& backend() { return *be_; }
  // Flat-buffer range [begin, end) of layer l's parameters (for gradient buckets).
  std::pair<std::int64_t, std::int64_t> layer_range(int layer) const;

  static double model_flops_per_token(const config::ModelConfig& cfg, int seq_len) {
    return model::model_flops_per_token(cfg, seq_len);
  }
  double model_flops_per_token() const { return model::model_flops_per_token(plan_.cfg, d_.T); }

 private:
  // Pointers into one layer's saved activations (for one slot).
  struct LayerActs {
    S *ln1_mean, *ln1_rstd;
    A *ln1, *q, *k, *v;
    S* attn_saved;
    A *attn_y, *mid;
    S *ln2_mean, *ln2_rstd;
    A *ln2, *fc, *up, *act;
    A *dy_w2, *dy_wo;  // split backward: output gradients kept for the W pass (else null)
    A* cp_y;           // Ulysses: the attention output over whole sequences (else null)
  };
  struct SlotBuffers {
    std::vector<A*> resid;          // L + 1 residual streams [Nsp, C]
    std::vector<LayerActs> layers;  // per layer (all alias one set under recompute and in inference)
    S *lnf_mean, *lnf_rstd;
    G* head_dx;  // gradient of the chunk's output, from the loss (last chunk)
    std::int32_t* tokens;
  };
  // Where layer forward's keys and values go and what its attention reads: the layer's own
  // activations (training), or the KV cache at position pos (inference).
  struct Cache {
    A* k;
    A* v;
    std::int64_t pos;
  };
  void bind();
  void layer_forward(const SlotBuffers& s, int l, const Cache* cache = nullptr);
  // split: the B pass of zb_h1 (no weight GEMMs; their output gradients kept in the slot).
  void layer_backward(const SlotBuffers& s, int l, bool split = false);
  void layer_weight_grads(const SlotBuffers& s, int l);  // the W pass of one layer
  void add_held_grads(int l);  // zb_h1 with ZeRO-2/3: the B pass's held gradients into layer l's (W)
  void head_forward(const SlotBuffers& s, const A* x, std::int64_t rows, std::int64_t rows_sp);
  void head_backward(const SlotBuffers& s);
  void embed_forward(const SlotBuffers& s, std::int64_t pos);
  void embed_backward(const SlotBuffers& s);
  void upload_tokens(std::int32_t* dst, const std::int32_t* tokens, std::int64_t n, bool targets);
  // norm over the Nsp rows of x; the output lands in `full` (rows of this rank's block under
  // SP, then all-gathered), ready as the input of a column-parallel layer.
  void norm_into_full(A* full, S* mean, S* rstd, const A* x, const A* w, const A* b, std::int64_t rows);
  // Leaving a TP region: partial [N, C] -> out [Nsp, C] (all-reduce, or reduce-scatter with SP).
  void reduce_from_tp(A* partial, A* out);
  // Entering a TP region backward: partial gradient of the full input -> [Nsp, C] (into `shard`).
  void reduce_grad_to_shard(A* partial_full, A* shard);
  // Leaving a TP region backward: d_resid [Nsp, C] as the full [N, C] gradient the GEMMs read.
  const A* grad_out_full();
  AttentionDims attention_dims() const;
  // Context parallelism (ring_attention_impl.hpp): ring attention forward / backward of one
  // layer, RoPE and learned positions at the global positions of the two local chunks.
  bool context_parallel() const { return plan_.place.cp_size > 1; }
  std::int64_t cp_chunk_position(int rank, int half) const;
  BlockAttentionDims cp_block(int q_half, int kv_rank, int kv_half) const;
  void ring_attention_forward(const LayerActs& a);
  void ring_attention_backward(const LayerActs& a);
  void rope_rows(bool backward, A* x, std::int64_t heads, std::int64_t pos);
  void position_embedding_rows(A* out, std::int64_t pos);
  void position_embedding_grad_rows(const G* d);
  // Context parallelism, Ulysses mode (ulysses_attention_impl.hpp): all-to-all over the cp group
  // to whole sequences of NH / cp heads, the backend's own attention, all-to-all back. A part
  // is one tensor in both layouts: seq [B, 2c, cp w] (this rank's chunks, every head of the TP
  // rank) and heads [B, cp 2c, w] (whole sequences in order, this rank's cp-th of the heads);
  // they may be one buffer.
  bool ulysses() const { return context_parallel() && plan_.place.cp_mode == config::CpMode::ulysses; }
  struct UlyssesPart {
    A* seq;
    A* heads;
    std::int64_t w;  // elements per row in the heads layout (heads / cp x HS)
  };
  void ulysses_to_heads(const UlyssesPart* parts, int n);
  void ulysses_to_sequence(const UlyssesPart* parts, int n);
  AttentionDims ulysses_dims() const;
  void ulysses_attention_forward(const LayerActs& a);
  void ulysses_attention_backward(const LayerActs& a);

  StagePlan plan_;
  comm::Communicator* tp_;
  std::unique_ptr<B> owned_backend_;
  B* be_;
  StageDims d_;  // the dimensions at the current sequence length (plan_.dims at the planned one)
  bool rms_;
  A* params_ = nullptr;
  G* grads_ = nullptr;
  ChunkView<A> w_;                                                   // parameters
  ChunkView<G> g_;                                                   // gradients
  ChunkView<G> held_;                                                // zb_h1 with ZeRO-2/3: B's (held_grads)
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_ranges_;  // per local layer: flat range
  std::vector<std::pair<std::int64_t, std::int64_t>> sp_sum_spans_;  // SP: (offset, numel) summed over TP
  std::vector<SlotBuffers> slots_;
  // work space shared by all slots and layers
  A *lnf_{}, *logits_{}, *d_out_{}, *d_ln_{}, *partial_{}, *d_attn_y_{}, *d_q_{}, *d_k_{}, *d_v_{}, *d_fc_{},
      *d_up_{}, *d_act_{}, *logits_gathered_{};
  G *d_resid_{}, *d_resid_full_{};
  S *losses_{}, *ce_max_{}, *ce_sum_{}, *ce_target_{}, *attn_work_{}, *rope_table_{};
  std::int32_t* targets_{};
  std::vector<A*> k_cache_, v_cache_;
  comm::Communicator* cp_ = nullptr;  // context parallelism: the ring
  A* cp_ring_{};
  G *cp_grad_{}, *cp_dq_{};  // the ring's dK/dV accumulators; dQ's where A != G
  S* cp_work_{};
  A *cp_send_{}, *cp_recv_{};  // Ulysses: the all-to-all's buffers
};

}  // namespace strata::model
