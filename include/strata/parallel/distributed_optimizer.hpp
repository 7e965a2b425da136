// Data-parallel gradient reduction and the (optionally ZeRO-1 sharded) optimizer of one
// model chunk, over its flat gradient buffer.
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
//     Megatron-LM's distributed optimizer, so every piece is one NCCL-sized equal split);
//     rank r keeps fp32 Adam moments for its pieces only (1/dp of the total), updates
//     its pieces, and the parameters are all-gathered bucket by bucket.
// Gradient sums use the scale the model was given (1 / global tokens), so a plain sum over
// DP ranks is the global-batch gradient.
#pragma once
#include <cstdint>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/parameters.hpp"
#include "strata/optim/optimizer.hpp"

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

class DistributedOptimizer {
 public:
  // `defer` lists ranges whose reduction must wait for finish_backward() (the tied output
  // layer's copy of the embedding, summed over the embedding group first).
  DistributedOptimizer(const config::OptimConfig& optim, const config::ParallelConfig& parallel,
                       const model::ParameterTable& table, comm::Communicator& dp,
                       std::vector<Range> defer = {});

  std::int64_t padded_numel() const { return padded_; }

  // Backward of the step's last micro-batch has finished every gradient in [offset, end):
  // launch the reductions of the buckets it covers.
  void grads_ready_from(std::int64_t offset, float* grads);
  // Launch what is left and wait for every reduction; returns the seconds spent waiting.
  double finish_backward(float* grads);
  // Sum of squared gradients this rank counts (its pieces under ZeRO-1; everything
  // otherwise), restricted to the tensors the table says count in the norm.
  double local_grad_sq(const float* grads) const;
  // AdamW on the owned pieces; then (ZeRO-1) all-gather the parameters. Returns seconds waited.
  double step(float* params, const float* grads, double lr, double grad_scale);

  // fp32 Adam moments held by this rank (1/dp of the total under ZeRO-1).
  std::size_t state_bytes() const { return 2 * std::size_t(state_elems_) * sizeof(float); }
  bool sharded() const { return zero_stage_ == 1; }  // ZeRO-1 over more than one DP rank
  const std::vector<Range>& buckets() const { return buckets_; }
  const std::vector<Range>& owned() const { return owned_; }
  int dp_size() const { return dp_.size(); }
  int dp_rank() const { return dp_.rank(); }

  // Checkpoints: the Adam moments of owned piece i start at exp_avg() + shard_offsets()[i]
  // (owned() lists the pieces in bucket order, i.e. from the end of the flat buffer).
  float* exp_avg() { return m_; }
  float* exp_avg_sq() { return v_; }
  const std::vector<std::int64_t>& shard_offsets() const { return shard_offset_; }
  long steps_taken() const { return step_; }
  void set_steps_taken(long steps) { step_ = steps; }

 private:
  void launch(std::size_t bucket, float* grads);
  // Where the reduced gradients of owned piece i live, addressed by flat offset.
  const float* reduced_grads(std::size_t piece, const float* grads) const;

  config::OptimConfig optim_;
  comm::Communicator& dp_;
  int zero_stage_;
  std::int64_t numel_, padded_;
  std::vector<Range> buckets_, owned_, deferred_, norm_ranges_;
  std::vector<optim::ParamGroup> groups_;
  std::vector<bool> launched_;
  std::vector<comm::Work> pending_;
  MemoryPlan state_{"optimizer"};
  float* m_ = nullptr;
  float* v_ = nullptr;
  float* gshard_ = nullptr;                 // ZeRO-1: reduced gradients of the owned pieces
  std::vector<std::int64_t> shard_offset_;  // start of owned piece i in m_, v_, gshard_
  std::int64_t state_elems_ = 0;
  long step_ = 0;
};

}  // namespace strata::parallel
