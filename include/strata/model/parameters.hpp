// The parameter table of one model chunk on one rank (a range of layers of one pipeline
// stage, the tensor-parallel shard of each tensor): every tensor's global name, local and
// global shape, where the local shard sits in the global tensor, its offset into one flat
// buffer, and its optimizer treatment. Parameters and gradients are two flat buffers with
// the same layout, so the optimizer, clipping and data-parallel reduction work on
// contiguous ranges rather than on tensor lists.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/core/tensor.hpp"

namespace strata::model {

enum class ParamKind { matrix, embedding, norm, bias };

// How a tensor is split over the tensor-parallel ranks.
enum class TpSplit {
  replicated,  // every TP rank holds the whole tensor (norms, row-parallel biases, wpe)
  rows,        // dimension 0 split: column-parallel weights and biases, vocab-parallel tables
  cols,        // dimension 1 split: row-parallel weights
};

struct ParamInfo {
  std::string name;    // global name, global layer index: "layers.11.mlp.fc.weight"
  Shape shape;         // local shape (this rank's shard)
  Shape global_shape;  // shape of the whole tensor
  TpSplit split = TpSplit::replicated;
  std::int64_t split_offset = 0;  // first row (rows) or column (cols) of the shard
  std::int64_t real_rows = -1;    // rows of the shard inside the unpadded tensor (vocab tables)
  std::int64_t offset = 0;        // element offset into the flat buffers
  std::int64_t numel = 0;
  ParamKind kind = ParamKind::matrix;
  double init_std = 0;     // 0 with kind norm: ones; 0 with kind bias: zeros
  bool in_matmul = false;  // enters a matrix multiply (counted in the 6N FLOP rule)
  // Under sequence parallelism each TP rank computes this replicated tensor's gradient from
  // its own sequence shard, so the gradient must be summed over the TP group.
  bool grad_needs_tp_sum = false;
  // Counted in the global gradient norm on this rank (replicated copies count once: on TP
  // rank 0, and a tied output layer's copy on the last stage not at all).
  bool counts_in_norm = true;

  // Global flat index of local element i (for initialisation and checkpoints).
  std::int64_t global_index(std::int64_t i) const;
};

// Where a model chunk sits in the rank grid.
struct ChunkPlacement {
  int tp_size = 1, tp_rank = 0;
  int first_layer = 0;
  int num_layers = -1;        // -1: all layers of the model
  bool has_embedding = true;  // the first chunk of the first stage
  bool has_head = true;       // the last chunk of the last stage
  bool sequence_parallel = false;
  int flat_multiple = 1;        // pad the flat parameter/gradient buffers to a multiple of this (dp)
  int vocab_multiple = 1;       // each rank's vocabulary slice a multiple of this (GPU: 64)
  bool split_backward = false;  // zb_h1: the weight gradients in a pass of their own (stage.hpp)
  // Context parallelism: this rank holds chunks cp_rank and 2 cp_size - 1 - cp_rank of each
  // sequence (the stage's seq_len is the local 2 chunks), ring attention over cp_size ranks.
  int cp_size = 1, cp_rank = 0;
  // ulysses: all-to-all to whole sequences of cp_size-th of the heads instead of the ring.
  config::CpMode cp_mode = config::CpMode::ring;
  // ZeRO-2: every layer and the tensors after the last layer start at a multiple of this (dp),
  // so each is a unit of equal DP pieces; the gaps stay zero. 1: tensors packed.
  int unit_multiple = 1;
  // ZeRO-2: the stage allocates no gradient buffer; the engine binds each layer's gradients
  // (bind_layer_grads) and those around the layers (bind_edge_grads) to its own buffers.
  bool sharded_grads = false;
  // ZeRO-3: the stage allocates no parameter buffer either; the engine binds each layer's
  // parameters to a gathered copy (bind_layer_params) and the edges' (bind_edge_params).
  bool sharded_params = false;
};

// The vocabulary padded to a multiple of tp x multiple (Megatron-LM pads it the same way) so
// every TP rank holds an equal slice of the embedding and output tables; on GPUs each slice
// is also a multiple of 64 rows, so the logits' rows stay 16-byte aligned for cuBLASLt and
// the vectorised cross-entropy (GPT-2's 50257 becomes 50304 on one GPU).
int padded_vocab(int vocab_size, int tp_size, int multiple = 1);

// Where one layer's tensors sit in the flat buffer (element offsets; -1: absent, i.e. no
// bias, or the tensor of the other MLP kind). gelu: w1 = mlp.fc, w2 = mlp.proj; swiglu:
// w1 = mlp.gate, w3 = mlp.up, w2 = mlp.down. Filled by make_parameter_table, the one place
// that spells the tensor names; layer code binds through these offsets, never by name.
struct LayerOffsets {
  std::int64_t attn_norm_w = -1, attn_norm_b = -1, wq = -1, bq = -1, wk = -1, bk = -1, wv = -1, bv = -1,
               wo = -1, bo = -1, mlp_norm_w = -1, mlp_norm_b = -1, w1 = -1, b1 = -1, w3 = -1, b3 = -1,
               w2 = -1, b2 = -1;
};

// The whole chunk: its layers (first_layer, first_layer + 1, ...) and the tensors around them.
// head is the output layer's weight: lm_head.weight, or embed.wte when the embeddings are tied
// (on a last stage without the embedding: the tied copy of embed.wte).
struct ChunkOffsets {
  int first_layer = 0;
  std::vector<LayerOffsets> layers;
  std::int64_t wte = -1, wpe = -1, head = -1, final_norm_w = -1, final_norm_b = -1;
};

// Typed pointers into a flat buffer (parameters, their gradients, or their master copy)
// through the offsets above; null where the tensor is absent.
template <class P>
struct LayerView {
  P *attn_norm_w, *attn_norm_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *mlp_norm_w, *mlp_norm_b;
  P *w1, *b1, *w3, *b3, *w2, *b2;
};
template <class P>
struct ChunkView {
  std::vector<LayerView<P>> layers;
  P *wte, *wpe, *head, *final_norm_w, *final_norm_b;
};
template <class P>
ChunkView<P> bind(const ChunkOffsets& o, P* base) {
  auto at = [base](std::int64_t off) -> P* { return off < 0 || !base ? nullptr : base + off; };
  ChunkView<P> v{{}, at(o.wte), at(o.wpe), at(o.head), at(o.final_norm_w), at(o.final_norm_b)};
  for (const LayerOffsets& l : o.layers)
    v.layers.push_back({at(l.attn_norm_w), at(l.attn_norm_b), at(l.wq), at(l.bq), at(l.wk), at(l.bk),
                        at(l.wv), at(l.bv), at(l.wo), at(l.bo), at(l.mlp_norm_w), at(l.mlp_norm_b), at(l.w1),
                        at(l.b1), at(l.w3), at(l.b3), at(l.w2), at(l.b2)});
  return v;
}

// ZeRO-2/3: layer `index` of a view (0 = the chunk's first layer) bound at base + offset; the
// tensors around the layers bound to `edges` (offsets before prefix_end at edges + offset, the
// rest at edges + prefix_end + (offset - suffix_begin)).
template <class P>
void rebind_layer(ChunkView<P>& v, const ChunkOffsets& o, std::size_t index, P* base) {
  ChunkOffsets one;
  one.layers.push_back(o.layers.at(index));
  v.layers.at(index) = bind(one, base).layers.front();
}
template <class P>
void rebind_edges(ChunkView<P>& v, const ChunkOffsets& o, P* edges, std::int64_t prefix_end,
                  std::int64_t suffix_begin) {
  auto at = [&](std::int64_t off) -> P* {
    if (off < 0) return nullptr;
    return off < prefix_end ? edges + off : edges + prefix_end + (off - suffix_begin);
  };
  v.wte = at(o.wte), v.wpe = at(o.wpe), v.head = at(o.head);
  v.final_norm_w = at(o.final_norm_w), v.final_norm_b = at(o.final_norm_b);
}

class ParameterTable {
 public:
  // Appends a tensor (its offset and numel are set here); returns its offset.
  std::int64_t add(ParamInfo info);
  // The next tensor starts at a multiple of `multiple` (a zero gap in the flat buffer).
  void align(std::int64_t multiple) { numel_ = (numel_ + multiple - 1) / multiple * multiple; }
  const std::vector<ParamInfo>& entries() const { return entries_; }
  const ParamInfo& get(const std::string& name) const;
  const ParamInfo* find(const std::string& name) const;
  std::int64_t numel() const { return numel_; }
  // Elements that enter a matmul: the N of the 6N FLOP rule (this rank's share).
  std::int64_t matmul_numel() const;
  // Flat range [begin, end) of layer `layer`'s tensors ("layers.<layer>."), which are
  // contiguous; {-1, -1} when the table holds none of them.
  std::pair<std::int64_t, std::int64_t> layer_range(int layer) const;
  // The typed layout of the chunk (make_parameter_table fills it).
  const ChunkOffsets& offsets() const { return offsets_; }
  ChunkOffsets& offsets() { return offsets_; }

 private:
  std::vector<ParamInfo> entries_;
  std::int64_t numel_ = 0;
  ChunkOffsets offsets_;
};

// The table for one chunk; with the default placement, the whole model on one rank.
ParameterTable make_parameter_table(const config::ModelConfig& cfg, const ChunkPlacement& place = {});

// The layout-independent initial values of every parameter of `table` (DESIGN.md invariant
// 2) into a host buffer in its flat layout (table.numel() elements): element i of a tensor is
// init_std * normal(CounterRng(seed, name), global index of i); norms ones, biases zeros,
// vocabulary padding rows zero. Transformer::init_parameters and the GPU engine both call it.
template <class T>
void init_parameter_values(const ParameterTable& table, std::uint64_t seed, T* params);

}  // namespace strata::model
