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
  int zero_stage = 0;        // in effect: 1 only with dp > 1
  bool reduce_bf16 = false;  // reduce in bf16 (grad_reduce_dtype: bf16 and dp > 1)
  std::int64_t numel = 0, padded = 0;
  std::vector<Range> buckets;  // launch order: from the end of the buffer
  std::vector<Range> owned;    // ZeRO-1: piece dp_rank of every bucket (bucket order); else {0, padded}
  std::vector<std::int64_t> shard_offset;  // where owned piece i starts in the state arrays
  std::int64_t state_elems = 0;  // elements of each state array (moments, master weights, gradient shard)
  std::vector<model::AdamWSegment> segments;  // owned pieces cut at weight-decay group boundaries
  std::vector<Range> norm_ranges;  // flat ranges of the tensors this rank counts in the gradient norm
  std::vector<Range> deferred;     // reduced only in finish_backward (the tied output copy of the embedding)
  bool sharded() const { return zero_stage == 1; }
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
  std::size_t state_bytes() const { return 2 * std::size_t(plan_.state_elems) * sizeof(float); }
  long steps_taken() const { return step_; }
  void set_steps_taken(long steps) { step_ = steps; }

 private:
  void launch(std::size_t bucket, G* grads);
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
};

}  // namespace strata::parallel
