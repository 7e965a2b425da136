// The memory plan of one model stage (a chunk of layers on one tensor-parallel rank), as a
// value: every buffer the stage's forward and backward use, with its shape, dtype and
// lifetime, computed from the config, the placement and a description of the backend. The
// stage (stage.hpp) allocates exactly this plan; `strata train --dry-run` and the planner
// print it without allocating, so a CPU-only build can show a GPU job's memory and the
// prediction cannot drift from what the engine allocates.
//
// Glossary (llm.c's; a local shard has no suffix here): B micro-batch sequences, T sequence
// length, N = B*T rows, C model width, NH/NKV query/KV heads of this TP rank, HS head size,
// Q = NH*HS, KV = NKV*HS, F the MLP width of this rank, V this rank's slice of the padded
// vocabulary, L layers of the chunk. With sequence parallelism the residual stream has
// Nsp = N / tp rows on each rank.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/parameters.hpp"

namespace strata::model {

// How a backend's attention keeps what its backward needs.
enum class AttentionMemory {
  probabilities,  // P = softmax(S) saved, [B, NH, T, T] per layer, and a [T, T] backward scratch (CPU)
  flash,          // only the row log-sum-exp, [B, NH, T]; the backward recomputes P in tiles (GPU)
};

// What the memory plan needs to know about a backend: the element types and the few
// buffers whose shape depends on its kernels. A value (no device code), so any build can plan
// for any backend.
struct BackendSpec {
  std::string name;  // "cpu fp32", "cpu fp64", "cuda bf16"
  Device device = Device::cpu;
  DType act = DType::f32;       // activations and the weights the kernels read
  DType grad = DType::f32;      // weight gradients and the residual-stream gradient
  DType stat = DType::f32;      // norm and softmax statistics, losses, the cross-entropy's row statistics
  bool master_weights = false;  // fp32 master weights kept apart from the compute copy (optimizer state)
  int vocab_multiple = 1;       // each TP rank's vocabulary slice a multiple of this (padded_vocab)
  AttentionMemory attention = AttentionMemory::probabilities;
  bool rope_table = false;  // RoPE angles read from a precomputed [max_seq_len, HS] table
  bool host_memory = true;  // buffers live in host memory (no staging needed to read them)
};

enum class StageMode {
  train,      // forward and backward of micro-batches in flight (activation slots)
  evaluate,   // forward and loss only (no gradients, nothing kept for a backward)
  inference,  // forward only, one sequence, keys and values kept in a cache (the decoder)
};

// The dimensions of one stage at its planned sequence length.
struct StageDims {
  int B = 0, T = 0, C = 0, NH = 0, NKV = 0, HS = 0, F = 0, V = 0, L = 0, first_layer = 0;
  std::int64_t N = 0, Nsp = 0, Q = 0, KV = 0;
  std::int64_t vocab_start = 0;  // first vocabulary row of this TP rank's slice
  std::int64_t vocab_real = 0;   // rows of the slice inside the unpadded vocabulary
  bool sp = false;               // sequence parallelism in effect (tp > 1)
};

// The tensors of a layer whose gradients zb_h1's B pass adds (layer_backward with split): the
// norms' weights and biases and the row-parallel biases, which their kernels produce with dX,
// each of d_model elements; the W pass adds the rest (the weight GEMMs, the column-parallel
// biases). The same fields of a layer's offsets and of a view.
inline constexpr std::array<std::int64_t LayerOffsets::*, 6> input_pass_tensors{
    &LayerOffsets::attn_norm_w, &LayerOffsets::attn_norm_b, &LayerOffsets::bo,
    &LayerOffsets::mlp_norm_w,  &LayerOffsets::mlp_norm_b,  &LayerOffsets::b2};
template <class P>
inline constexpr std::array<P * LayerView<P>::*, 6> input_pass_grads{
    &LayerView<P>::attn_norm_w, &LayerView<P>::attn_norm_b, &LayerView<P>::bo,
    &LayerView<P>::mlp_norm_w,  &LayerView<P>::mlp_norm_b,  &LayerView<P>::b2};

class StagePlan {
 public:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);

  // Plans (never allocates) a stage for micro-batches of `batch` sequences of `seq_len` with
  // `slots` micro-batches in flight (train) or a decoder with a cache of seq_len positions
  // (inference: batch 1, slots 1). Throws naming the setting when the shape cannot be split.
  StagePlan(const config::ModelConfig& cfg, const ChunkPlacement& place, int batch, int seq_len, int slots,
            const BackendSpec& spec, StageMode mode = StageMode::train);
  // Adds the ring-attention buffers (cp_ring, cp_grad, cp_dq, cp_work) of a context-parallel stage
  // (context_parallel.cpp); called by the constructor.
  void plan_ring_attention(bool train);
  void plan_held_grads();  // held_grads, held_layout; called by the constructor
  // Context parallelism in the Ulysses mode (place.cp_mode): checks that the heads split over
  // cp and adds the all-to-all buffers (cp_send, cp_recv); context_parallel.cpp.
  void check_ulysses_heads() const;
  void plan_ulysses_attention();

  // Indices into acts of one layer's saved activations (all slots alias one set under full
  // recomputation and in inference). attn_saved: P (probabilities) or the log-sum-exp (flash).
  struct Layer {
    std::size_t ln1_mean, ln1_rstd, ln1, q, k, v, attn_saved, attn_y, mid, ln2_mean, ln2_rstd, ln2, fc, up,
        act;
    // place.split_backward: the output gradients of the MLP's and the attention's last GEMM
    // [N, C], kept from the B pass for the W pass (q, k, v, fc, up then hold their gradients).
    std::size_t dy_w2 = none, dy_wo = none;
    // Ulysses context parallelism: the attention's output [B, cp T, NH / cp heads] (the layout
    // it was computed in; the backward reads it), before the all-to-all back into attn_y. q, k
    // and v then hold the layer's gathered queries, keys and values in that layout.
    std::size_t cp_y = none;
  };
  struct Slot {
    std::vector<std::size_t> resid;  // L + 1 residual streams [Nsp, C]: each layer's input, then the output
    std::vector<Layer> layers;
    std::size_t lnf_mean = none, lnf_rstd = none;  // final norm statistics (head)
    std::size_t head_dx = none;  // gradient of the chunk's output from the loss (head, train)
    std::size_t tokens = none;   // the micro-batch's tokens (embedding)
  };

  config::ModelConfig cfg;
  ChunkPlacement place;
  BackendSpec spec;
  StageMode mode;
  StageDims dims;
  ParameterTable table;
  std::int64_t flat = 0;  // the flat parameter/gradient buffers: table.numel() padded to place.flat_multiple

  MemoryPlan weights{"parameters"};  // params (compute copy), grads (train)
  MemoryPlan acts{"activations"};    // every activation slot, the work space, the KV cache
  std::size_t params = none, grads = none;
  // zb_h1 with ZeRO-2/3 (place.split_backward and place.sharded_grads): the gradients the B
  // pass adds (input_pass_tensors) of every layer, held until the layer's next W pass adds them
  // to its unit buffer ("grads.held", 6 x C per layer at most); held_layout gives each layer's
  // tensors their offsets in it (the others -1).
  std::size_t held_grads = none;
  ChunkOffsets held_layout;
  std::vector<Slot> slots;
  // Work space shared by every slot and layer (none where the configuration needs no such buffer).
  std::size_t lnf = none, logits = none, losses = none, ce_stats = none, targets = none;
  std::size_t d_resid = none;  // grad dtype [Nsp, C]: dL/d(residual stream)
  std::size_t d_out = none;    // act dtype [N, C]: dL/d(out) as a GEMM reads it (SP or act != grad)
  std::size_t d_resid_full =
      none;  // grad dtype [N, C]: the gathered gradient the embedding reads (SP, act != grad)
  std::size_t d_ln = none, partial = none, d_attn_y = none, d_q = none, d_k = none, d_v = none, d_fc = none,
              d_up = none, d_act = none;
  std::size_t attn_work = none;   // attention backward scratch (probabilities) or work space (flash)
  std::size_t rope_table = none;  // [max_seq_len, HS] (spec.rope_table)
  // Context parallelism (place.cp_size > 1): the ring's K/V blocks in flight (K, V, two of
  // each, [N, KV]), in train their gradient accumulators dK, dV (two of each, grad dtype) and,
  // where act != grad, the dQ accumulator [N, Q] (grad dtype); the block-attention work space.
  // attn_saved is then the row log-sum-exp [N, NH].
  std::size_t cp_ring = none, cp_grad = none, cp_dq = none, cp_work = none;
  // Ulysses (place.cp_mode): the all-to-all's send and receive buffers, [N, Q + 2 KV] each (q,
  // k and v of a layer in one exchange). attn_saved and attn_work are then sized for whole
  // sequences (cp T positions) of NH / cp heads.
  std::size_t cp_send = none, cp_recv = none;
  std::vector<std::size_t> k_cache, v_cache;  // inference: per layer [seq_len, KV]
  std::size_t logits_gathered = none;         // inference with tp > 1: [tp, seq_len, V]

  std::size_t bytes() const { return weights.total_bytes() + acts.total_bytes(); }
};

// The spec of the CPU backend for scalar type T (f32 or f64) and of the CUDA backend (bf16
// compute, fp32 gradients, statistics and master weights, flash attention).
BackendSpec cpu_backend_spec(DType scalar);
BackendSpec cuda_backend_spec();

// The attention kernels' buffer sizes, in elements of spec.stat, for one layer of B sequences
// of T tokens with NH heads of HS (saved for the backward; backward work space).
std::int64_t attention_saved_elems(const BackendSpec& spec, std::int64_t B, std::int64_t T, std::int64_t NH);
std::int64_t attention_work_elems(const BackendSpec& spec, std::int64_t B, std::int64_t T, std::int64_t NH,
                                  std::int64_t HS);

}  // namespace strata::model
