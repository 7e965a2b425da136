// Data-parallel gradient reduction and the (optionally ZeRO-1 sharded) AdamW of one model
// chunk over its flat gradient buffer, written once over the backend (model/backend.hpp).
//
// The flat buffer (padded to a multiple of dp) is cut into buckets of about
// parallel.bucket_mb, laid out from the END of the buffer: backward produces gradients
// from the output layer towards the embedding, i.e. from the end of the buffer towards its
// start, so each bucket can be reduced (non-blocking) as soon as backward has passed it,
// overlapped with the rest of backward.
//
//   zero_stage 0: each bucket is all-reduced; every DP rank updates the whole buffer.
//   zero_stage 1 (Rajbhandari et al. 2020, "ZeRO", stage 1 = optimizer-state partitioning):
//     each bucket is reduce-scattered: DP rank r owns piece r of every bucket (like
//     Megatron-LM's distributed optimizer, so every piece is one equal split); rank r keeps
//     the Adam moments (and, where the backend keeps them apart, the fp32 master weights) for
//     its pieces only (1/dp of the total), updates its pieces, and the parameters' compute
//     copy is all-gathered bucket by bucket.
//   zero_stage 2 (ZeRO stage 2 = gradient partitioning as well): the buckets are the
//     chunk's units: the tensors before the first layer, each layer, the tensors after the
//     last (the parameter table aligns each to a multiple of dp, so the pieces stay equal).
//     The stage keeps no flat gradient buffer: each layer's gradient is written into one of
//     two unit buffers, reduce-scattered right after that layer's backward in EVERY
//     micro-batch (non-blocking, overlapped with the next layer's backward) and added into
//     this rank's gradient shard; a unit buffer is reused once its reduction is done. The
//     tensors around the layers (embedding, final norm, head: their gradients accumulate
//     over the step, and the tied embedding is summed over the pipeline's embedding group
//     first) keep one buffer for the step, reduce-scattered in finish_backward. Owned pieces,
//     AdamW and the parameter all-gather are ZeRO-1's.
//   zero_stage 3 (fully sharded: parameters partitioned as well): the gradients as ZeRO-2;
//     each rank keeps only its pieces of the parameters' compute copy ("param.shard", the
//     AdamW segments address it by state offset). A layer's parameters are all-gathered into
//     one of two gather buffers just before its forward and again before its backward, the
//     next layer's gather started (non-blocking) while the current one computes; the edges'
//     parameters (embedding, final norm, head) are gathered once per step into their own
//     buffer and stay for the step. No parameter all-gather after the step.
//   grad_reduce_dtype bf16 (GPU): the bucket is cast to a bf16 staging copy, reduced in bf16
//     (half the bytes) and cast back after the wait.
// Gradient sums use the scale the model was given (1 / global tokens), so a plain sum over
// DP ranks is the global-batch gradient. The buckets, pieces, AdamW segments and norm ranges
// are one value (ShardingPlan) shared by every backend and by the checkpoints.
#pragma once
#include <cstdint>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/backend.hpp"
#include "strata/model/parameters.hpp"

namespace strata::parallel {

struct Range {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end > begin ? end - begin : 0; }
  Range intersect(const Range& o) const { return {std::max(begin, o.begin), std::min(end, o.end)}; }
  bool operator==(const Range&) const = default;
};

std::int64_t padded_size(std::int64_t numel, int dp);
// Buckets covering [0, padded_size(numel, dp)), each a multiple of dp elements, about
// bucket_elems each; listed in launch order (the end of the buffer first).
std::vector<Range> make_buckets(std::int64_t numel, std::int64_t bucket_elems, int dp);
// DP rank r's piece of a bucket (bucket size divisible by dp).
Range shard_piece(const Range& bucket, int dp, int dp_rank);

// How one chunk's flat buffer is reduced, sharded and updated on one DP rank.
struct ShardingPlan {
  int dp_size = 1, dp_rank = 0;
  int zero_stage = 0;        // in effect: 1, 2 or 3 only with dp > 1
  bool reduce_bf16 = false;  // reduce in bf16 (grad_reduce_dtype: bf16 and dp > 1)
  std::int64_t numel = 0, padded = 0;
  std::vector<Range> buckets;  // launch order: from the end of the buffer
  std::vector<Range> owned;    // ZeRO-1: piece dp_rank of every bucket (bucket order); else {0, padded}
  std::vector<std::int64_t> shard_offset;  // where owned piece i starts in the state arrays
  std::int64_t state_elems = 0;  // elements of each state array (moments, master weights, gradient shard)
  std::vector<model::AdamWSegment> segments;  // owned pieces cut at weight-decay group boundaries
  std::vector<Range> norm_ranges;  // flat ranges of the tensors this rank counts in the gradient norm
  std::vector<Range> deferred;     // reduced only in finish_backward (the tied output copy of the embedding)
  // ZeRO-2: tensors in [0, prefix_end) and [suffix_begin, padded) are the edges (one gradient
  // buffer for the step); edge[i]: bucket i is an edge unit.
  std::int64_t prefix_end = 0, suffix_begin = 0;
  std::vector<bool> edge;
  bool sharded() const { return zero_stage >= 1; }
  bool grads_sharded() const { return zero_stage >= 2; }
  bool params_sharded() const { return zero_stage == 3; }
  std::int64_t edge_elems() const { return prefix_end + (padded - suffix_begin); }
  std::int64_t max_layer_unit() const;
  // The bucket that starts at flat offset `begin`.
  std::size_t bucket_at(std::int64_t begin) const;
  // What this rank writes of the flat buffer in a checkpoint: its ZeRO-1 pieces, else 1/dp of it.
  std::vector<Range> partition() const;
};

// `defer`: ranges whose reduction must wait for finish_backward().
ShardingPlan make_sharding_plan(const model::ParameterTable& table, const config::OptimConfig& optim,
                                const config::ParallelConfig& parallel, int dp_size, int dp_rank,
                                std::vector<Range> defer = {});

// The optimizer's memory: fp32 master weights (backends that keep them apart), Adam moments,
// the reduced gradient shard (ZeRO-1), the bf16 reduction staging, the AdamW segment table.
struct OptimizerMemory {
  MemoryPlan plan{"optimizer"};
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t master = none, m = none, v = none, gshard = none, stage = none, stage_shard = none,
              segments = none;
  std::size_t edges = none, unit[2] = {none, none}, unit_piece[2] = {none, none};  // ZeRO-2
  std::size_t pshard = none, pedges = none, gather[2] = {none, none};              // ZeRO-3
  bool is_parameter(std::size_t i) const {
    return i != none && (i == pshard || i == pedges || i == gather[0] || i == gather[1]);
  }
  std::size_t parameter_bytes() const;  // ZeRO-3's parameter buffers (the stage has none)
  bool is_gradient(std::size_t i) const {
    return i != none &&
           (i == edges || i == unit[0] || i == unit[1] || i == unit_piece[0] || i == unit_piece[1]);
  }
  // ZeRO-2's gradient buffers (64-byte aligned, as the plan lays them out): the stage has none.
  std::size_t gradient_bytes() const;
};
OptimizerMemory plan_optimizer_memory(const ShardingPlan& sharding, const model::BackendSpec& spec);

template <class B>
class DistributedOptimizer {
 public:
  using A = typename B::Act;
  using G = typename B::Grad;

  // Allocates the optimizer memory on the backend. `dp` is the data-parallel group on the
  // backend's device.
  DistributedOptimizer(const config::OptimConfig& optim, const ShardingPlan& sharding, comm::Communicator& dp,
                       B& backend);

  const ShardingPlan& sharding() const { return plan_; }
  std::int64_t padded_numel() const { return plan_.padded; }

  // Backward of the step's last micro-batch has finished every gradient in [offset, end):
  // launch the reductions of the buckets it covers.
  void grads_ready_from(std::int64_t offset, G* grads);
  // Launch what is left and wait for every reduction (the compute stream waits, on GPUs).
  void finish_backward(G* grads);
  // Sum of squared gradients this rank counts (its pieces under ZeRO-1; everything
  // otherwise), restricted to the tensors the table says count in the norm (host, double).
  double local_grad_sq(const G* grads) const;
  // AdamW on the owned pieces; then (ZeRO-1) all-gather the parameters' compute copy.
  void step(A* params, const G* grads, double lr, double grad_scale);
  // ZeRO-1's parameter all-gather of the last step, marks around it for its time.
  typename B::Mark gather_start{}, gather_end{};

  // The fp32 master weights of the owned pieces from host values of the whole flat buffer
  // (backends that keep master weights; no-op otherwise).
  void set_master(const float* flat_host);
  // The state arrays in backend memory: master (null where the parameters are their own
  // master weights), moments; piece i starts at sharding().shard_offset[i].
  float* master() { return master_; }
  float* exp_avg() { return m_; }
  float* exp_avg_sq() { return v_; }
  // The reduced gradients of the owned pieces (ZeRO-1's shard buffer, [state_elems]) to the host.
  void download_shard(float* host) const;

  // ZeRO-2 (sharding().grads_sharded()). At the start of the step: zero the gradient shard
  // and the edge buffer.
  void zero_grad_shard();
  // The edge buffer (the stage binds the tensors around its layers to it), and where flat
  // offset x of an edge tensor lives.
  G* edges() { return edges_; }
  G* edge_grad(std::int64_t x) {
    return x < plan_.prefix_end ? edges_ + x : edges_ + plan_.prefix_end + (x - plan_.suffix_begin);
  }
  // Before a layer's backward: a zeroed unit buffer for the unit starting at `begin` (waits
  // for that buffer's previous reduction and adds it to the shard), returned as the base the
  // flat offsets index. After it: launch the unit's reduce-scatter.
  G* begin_unit(std::int64_t begin);
  void end_unit(std::int64_t begin);

  // ZeRO-3 (sharding().params_sharded()). The edges' parameters, gathered by
  // gather_edges() (once per step: a no-op until the next step or load changes them).
  A* param_edges() { return pedges_; }
  void gather_edges();
  // The gathered parameters of the unit starting at `begin`, as the base the flat offsets
  // index (waits for its gather, launching it if no prefetch did); then starts the gather of
  // the unit at `prefetch` (-1: none) into the other buffer.
  A* gathered_unit(std::int64_t begin, std::int64_t prefetch);
  // This rank's pieces of the compute copy ([state_elems], piece i at shard_offset[i]), and
  // setting them (and the master weights) from host values of the whole flat buffer.
  A* param_shard() { return pshard_; }
  void set_param_shard(const float* flat_host);
  std::size_t state_bytes() const { return 2 * std::size_t(plan_.state_elems) * sizeof(float); }
  long steps_taken() const { return step_; }
  void set_steps_taken(long steps) { step_ = steps; }

 private:
  void launch(std::size_t bucket, G* grads);
  void settle_unit(int k);  // ZeRO-2: wait for unit buffer k's reduction, add it to the shard
  // Where the reduced gradients of owned piece i live, addressed by flat offset.
  const G* reduced_grads(std::size_t piece, const G* grads) const;

  config::OptimConfig optim_;
  const ShardingPlan& plan_;
  comm::Communicator& dp_;
  B& be_;
  OptimizerMemory mem_;
  std::vector<bool> launched_;
  std::vector<comm::Work> pending_;
  mutable std::vector<typename B::Span> norm_spans_;  // built at the first local_grad_sq for a buffer
  mutable const G* norm_grads_ = nullptr;
  float *master_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  G* gshard_ = nullptr;
  void *stage_ = nullptr, *stage_shard_ = nullptr;  // bf16 reduction staging
  model::AdamWSegment* device_segments_ = nullptr;
  long step_ = 0;
  // ZeRO-3
  A *pshard_ = nullptr, *pedges_ = nullptr, *gather_[2] = {nullptr, nullptr};
  std::size_t gather_bucket_[2] = {SIZE_MAX, SIZE_MAX};
  comm::Work gather_work_[2];
  bool edges_fresh_ = false;
  int next_unit_gather_ = 0;
  void start_gather(int k, std::size_t bucket);
  // ZeRO-2
  G* edges_ = nullptr;
  G *unit_[2] = {nullptr, nullptr}, *unit_piece_[2] = {nullptr, nullptr};
  std::size_t unit_bucket_[2] = {SIZE_MAX, SIZE_MAX};
  comm::Work unit_work_[2];
  int next_unit_ = 0, current_unit_ = -1;
};

}  // namespace strata::parallel
