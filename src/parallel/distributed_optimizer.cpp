#include "strata/parallel/distributed_optimizer.hpp"

#include <algorithm>

#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cpu/elementwise.hpp"

namespace strata::parallel {

std::int64_t padded_size(std::int64_t numel, int dp) { return (numel + dp - 1) / dp * dp; }

std::vector<Range> make_buckets(std::int64_t numel, std::int64_t bucket_elems, int dp) {
  const std::int64_t total = padded_size(numel, dp);
  const std::int64_t step = std::max<std::int64_t>(dp, bucket_elems / dp * dp);
  std::vector<Range> out;
  for (std::int64_t end = total; end > 0;) {
    const std::int64_t begin = std::max<std::int64_t>(0, end - step);
    out.push_back({begin, end});
    end = begin;
  }
  return out;
}

Range shard_piece(const Range& bucket, int dp, int dp_rank) {
  const std::int64_t len = bucket.size() / dp;
  return {bucket.begin + dp_rank * len, bucket.begin + (dp_rank + 1) * len};
}

DistributedOptimizer::DistributedOptimizer(const config::OptimConfig& optim,
                                           const config::ParallelConfig& parallel,
                                           const model::ParameterTable& table, comm::Communicator& dp,
                                           std::vector<Range> defer)
    : optim_(optim), dp_(dp), zero_stage_(dp.size() > 1 ? parallel.zero_stage : 0), numel_(table.numel()),
      padded_(padded_size(table.numel(), dp.size())), deferred_(std::move(defer)),
      groups_(optim::make_param_groups(table, optim)) {
  const std::int64_t bucket_elems = std::int64_t(parallel.bucket_mb * 1024 * 1024 / sizeof(float));
  buckets_ = make_buckets(numel_, bucket_elems, dp.size());
  launched_.assign(buckets_.size(), false);
  pending_.resize(buckets_.size());
  if (zero_stage_ == 1)
    for (const Range& b : buckets_) owned_.push_back(shard_piece(b, dp.size(), dp.rank()));
  else
    owned_.push_back({0, padded_});
  std::int64_t state = 0;
  for (const Range& r : owned_) {
    shard_offset_.push_back(state);
    state += r.size();
  }
  state_elems_ = state;
  state_.add("adam.m", {state}, DType::f32, "persistent");
  state_.add("adam.v", {state}, DType::f32, "persistent");
  if (zero_stage_ == 1) state_.add("grad.shard", {state}, DType::f32, "step");
  state_.allocate();
  m_ = state_.data<float>(0);
  v_ = state_.data<float>(1);
  if (zero_stage_ == 1) gshard_ = state_.data<float>(2);
  // Tensors counted in the global gradient norm, merged into ranges.
  for (const auto& p : table.entries()) {
    if (!p.counts_in_norm) continue;
    if (!norm_ranges_.empty() && norm_ranges_.back().end == p.offset) norm_ranges_.back().end += p.numel;
    else norm_ranges_.push_back({p.offset, p.offset + p.numel});
  }
}

void DistributedOptimizer::launch(std::size_t i, float* grads) {
  if (launched_[i]) return;
  launched_[i] = true;
  const Range& b = buckets_[i];
  if (dp_.size() == 1) return;
  if (zero_stage_ == 1) {
    // This rank's piece of the bucket, summed over DP, lands in its slot of the shard buffer
    // (bucket i's piece sits at i * piece size: owned_ lists the pieces in bucket order).
    const std::int64_t piece = b.size() / dp_.size();
    pending_[i] = dp_.ireduce_scatter(grads + b.begin, gshard_ + shard_offset_[i], std::size_t(piece),
                                      DType::f32, comm::ReduceOp::sum);
  } else {
    pending_[i] = dp_.iall_reduce(grads + b.begin, std::size_t(b.size()), DType::f32, comm::ReduceOp::sum);
  }
}

void DistributedOptimizer::grads_ready_from(std::int64_t offset, float* grads) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    if (launched_[i] || buckets_[i].begin < offset) continue;
    bool deferred = false;
    for (const Range& d : deferred_) deferred |= buckets_[i].intersect(d).size() > 0;
    if (!deferred) launch(i, grads);
  }
}

double DistributedOptimizer::finish_backward(float* grads) {
  const Timer timer;
  for (std::size_t i = 0; i < buckets_.size(); ++i) launch(i, grads);
  for (auto& w : pending_) dp_.wait(w);
  std::fill(launched_.begin(), launched_.end(), false);
  return timer.seconds();
}

const float* DistributedOptimizer::reduced_grads(std::size_t piece, const float* grads) const {
  // ZeRO-1: the shard buffer holds the owned pieces; indexing it by the flat offset of the
  // piece's start gives the same addressing as the full buffer.
  return zero_stage_ == 1 ? gshard_ + shard_offset_[piece] - owned_[piece].begin : grads;
}

double DistributedOptimizer::local_grad_sq(const float* grads) const {
  double sq = 0;
  for (std::size_t i = 0; i < owned_.size(); ++i) {
    const float* g = reduced_grads(i, grads);
    for (const Range& n : norm_ranges_) {
      const Range r = owned_[i].intersect(n).intersect({0, numel_});
      if (r.size() > 0) sq += kernels::cpu::sum_squares(g + r.begin, r.size());
    }
  }
  return sq;
}

double DistributedOptimizer::step(float* params, const float* grads, double lr, double grad_scale) {
  ++step_;
  for (std::size_t i = 0; i < owned_.size(); ++i) {
    const Range& own = owned_[i];
    const float* g = reduced_grads(i, grads);
    for (const optim::ParamGroup& group : groups_) {
      const Range r = own.intersect({group.offset, group.offset + group.numel});
      if (r.size() <= 0) continue;
      const kernels::cpu::AdamWParams p{lr, optim_.beta1, optim_.beta2, optim_.eps, group.weight_decay,
                                        grad_scale, step_};
      const std::int64_t s = shard_offset_[i] + (r.begin - own.begin);
      kernels::cpu::adamw_update(params + r.begin, g + r.begin, m_ + s, v_ + s, r.size(), p);
    }
  }
  if (zero_stage_ != 1 || dp_.size() == 1) return 0.0;
  const Timer timer;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    const Range& b = buckets_[i];
    const Range piece = shard_piece(b, dp_.size(), dp_.rank());
    pending_[i] = dp_.iall_gather(params + piece.begin, params + b.begin, std::size_t(piece.size()), DType::f32);
  }
  for (auto& w : pending_) dp_.wait(w);
  return timer.seconds();
}

}  // namespace strata::parallel
