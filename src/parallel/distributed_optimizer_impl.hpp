// DistributedOptimizer<B> (distributed_optimizer.hpp) over any backend; included by the files
// that instantiate the engine (engine_cpu.cpp, cuda/engine_cuda.cu).
#pragma once
#include <algorithm>
#include <type_traits>

#include "strata/core/error.hpp"
#include "strata/parallel/distributed_optimizer.hpp"

namespace strata::parallel {

template <class B>
DistributedOptimizer<B>::DistributedOptimizer(const config::OptimConfig& optim, const ShardingPlan& sharding,
                                              comm::Communicator& dp, B& backend)
    : optim_(optim),
      plan_(sharding),
      dp_(dp),
      be_(backend),
      mem_(plan_optimizer_memory(sharding, B::spec())) {
  static_assert(std::is_same_v<G, float>, "the optimizer state and the reduced gradients are fp32");
  STRATA_CHECK(dp.size() == plan_.dp_size, "optimizer: the DP group has ", dp.size(), " ranks, the plan ",
               plan_.dp_size);
  launched_.assign(plan_.buckets.size(), false);
  pending_.resize(plan_.buckets.size());
  be_.allocate(mem_.plan);
  auto ptr = [&](std::size_t i) { return i == OptimizerMemory::none ? nullptr : mem_.plan.tensor(i).raw(); };
  master_ = static_cast<float*>(ptr(mem_.master));
  m_ = static_cast<float*>(ptr(mem_.m));
  v_ = static_cast<float*>(ptr(mem_.v));
  gshard_ = static_cast<G*>(ptr(mem_.gshard));
  stage_ = ptr(mem_.stage);
  stage_shard_ = ptr(mem_.stage_shard);
  device_segments_ = static_cast<model::AdamWSegment*>(ptr(mem_.segments));
  edges_ = static_cast<G*>(ptr(mem_.edges));
  for (int k = 0; k < 2; ++k) {
    unit_[k] = static_cast<G*>(ptr(mem_.unit[k]));
    unit_piece_[k] = static_cast<G*>(ptr(mem_.unit_piece[k]));
  }
  pshard_ = static_cast<A*>(ptr(mem_.pshard));
  pedges_ = static_cast<A*>(ptr(mem_.pedges));
  for (int k = 0; k < 2; ++k) gather_[k] = static_cast<A*>(ptr(mem_.gather[k]));
  STRATA_CHECK(!plan_.grads_sharded() || !plan_.reduce_bf16, "ZeRO-2/3 reduce gradients in fp32");
  if (device_segments_) be_.upload_segments(device_segments_, plan_.segments);
}

template <class B>
void DistributedOptimizer<B>::launch(std::size_t i, G* grads) {
  if (launched_[i]) return;
  launched_[i] = true;
  if (plan_.dp_size == 1) return;
  const Range& b = plan_.buckets[i];
  const std::size_t piece = std::size_t(b.size() / plan_.dp_size);
  // ZeRO-1: this rank's piece of the bucket, summed over DP, lands in its slot of the shard
  // buffer (bucket i's piece at shard_offset[i]: owned lists the pieces in bucket order).
  if (plan_.reduce_bf16) {
    // The cast runs in stream order before the collective starts.
    void* st = static_cast<char*>(stage_) + std::size_t(b.begin) * 2;
    be_.cast_to_bf16(st, grads + b.begin, b.size());
    if (plan_.sharded())
      pending_[i] =
          dp_.ireduce_scatter(st, static_cast<char*>(stage_shard_) + std::size_t(plan_.shard_offset[i]) * 2,
                              piece, DType::bf16, comm::ReduceOp::sum);
    else
      pending_[i] = dp_.iall_reduce(st, std::size_t(b.size()), DType::bf16, comm::ReduceOp::sum);
  } else if (plan_.sharded()) {
    pending_[i] = dp_.ireduce_scatter(grads + b.begin, gshard_ + plan_.shard_offset[i], piece, dtype_of<G>(),
                                      comm::ReduceOp::sum);
  } else {
    pending_[i] = dp_.iall_reduce(grads + b.begin, std::size_t(b.size()), dtype_of<G>(), comm::ReduceOp::sum);
  }
}

template <class B>
void DistributedOptimizer<B>::grads_ready_from(std::int64_t offset, G* grads) {
  for (std::size_t i = 0; i < plan_.buckets.size(); ++i) {
    if (launched_[i] || plan_.buckets[i].begin < offset) continue;
    bool deferred = false;
    for (const Range& d : plan_.deferred) deferred |= plan_.buckets[i].intersect(d).size() > 0;
    if (!deferred) launch(i, grads);
  }
}

template <class B>
void DistributedOptimizer<B>::zero_grad_shard() {
  be_.fill(gshard_, G(0), plan_.state_elems);
  be_.fill(edges_, G(0), plan_.edge_elems());
}

template <class B>
void DistributedOptimizer<B>::settle_unit(int k) {
  if (unit_bucket_[k] == SIZE_MAX) return;
  const std::size_t i = unit_bucket_[k];
  dp_.wait(unit_work_[k]);
  be_.accumulate(gshard_ + plan_.shard_offset[i], unit_piece_[k], plan_.buckets[i].size() / plan_.dp_size);
  unit_bucket_[k] = SIZE_MAX;
}

template <class B>
typename B::Grad* DistributedOptimizer<B>::begin_unit(std::int64_t begin) {
  const std::size_t i = plan_.bucket_at(begin);
  const int k = next_unit_;
  next_unit_ ^= 1;
  settle_unit(k);  // the buffer's previous unit: reduced, added to the shard
  be_.fill(unit_[k], G(0), plan_.buckets[i].size());
  unit_bucket_[k] = i;
  unit_work_[k] = {};
  current_unit_ = k;
  return unit_[k] - begin;
}

template <class B>
void DistributedOptimizer<B>::end_unit(std::int64_t begin) {
  const std::size_t i = plan_.bucket_at(begin);
  const int k =
      current_unit_;  // the buffer begin_unit gave (the other may hold the same unit, still in flight)
  STRATA_CHECK(k >= 0 && unit_bucket_[k] == i, "ZeRO-2: unit ", begin, " ended without a buffer");
  current_unit_ = -1;
  unit_work_[k] =
      dp_.ireduce_scatter(unit_[k], unit_piece_[k], std::size_t(plan_.buckets[i].size() / plan_.dp_size),
                          dtype_of<G>(), comm::ReduceOp::sum);
}

template <class B>
void DistributedOptimizer<B>::start_gather(int k, std::size_t i) {
  const Range& b = plan_.buckets[i];
  gather_bucket_[k] = i;
  gather_work_[k] = dp_.iall_gather(pshard_ + plan_.shard_offset[i], gather_[k],
                                    std::size_t(b.size() / plan_.dp_size), dtype_of<A>());
}

template <class B>
typename B::Act* DistributedOptimizer<B>::gathered_unit(std::int64_t begin, std::int64_t prefetch) {
  const std::size_t i = plan_.bucket_at(begin);
  int k = gather_bucket_[0] == i ? 0 : gather_bucket_[1] == i ? 1 : -1;
  if (k < 0) {  // not prefetched: gather into the buffer not holding the other unit
    k = gather_bucket_[0] == SIZE_MAX ? 0 : gather_bucket_[1] == SIZE_MAX ? 1 : next_unit_gather_;
    dp_.wait(gather_work_[k]);
    start_gather(k, i);
  }
  dp_.wait(gather_work_[k]);
  next_unit_gather_ = k ^ 1;
  if (prefetch >= 0) {
    const std::size_t j = plan_.bucket_at(prefetch);
    if (gather_bucket_[k ^ 1] != j) {
      dp_.wait(gather_work_[k ^ 1]);
      start_gather(k ^ 1, j);
    }
  }
  return gather_[k] - begin;
}

template <class B>
void DistributedOptimizer<B>::gather_edges() {
  if (edges_fresh_) return;
  for (std::size_t i = 0; i < plan_.buckets.size(); ++i) {
    if (!plan_.edge[i]) continue;
    const Range& b = plan_.buckets[i];
    A* dst =
        pedges_ + (b.begin < plan_.prefix_end ? b.begin : plan_.prefix_end + (b.begin - plan_.suffix_begin));
    pending_[i] = dp_.iall_gather(pshard_ + plan_.shard_offset[i], dst, std::size_t(b.size() / plan_.dp_size),
                                  dtype_of<A>());
  }
  for (auto& w : pending_) dp_.wait(w);
  edges_fresh_ = true;
}

template <class B>
void DistributedOptimizer<B>::set_param_shard(const float* flat_host) {
  for (std::size_t i = 0; i < plan_.owned.size(); ++i) {
    const Range r = plan_.owned[i].intersect({0, plan_.numel});  // the padding stays zero
    if (r.size() > 0) be_.upload_cast(pshard_ + plan_.shard_offset[i], flat_host + r.begin, r.size());
  }
  be_.synchronize();
  set_master(flat_host);
  edges_fresh_ = false;
  gather_bucket_[0] = gather_bucket_[1] = SIZE_MAX;
}

template <class B>
void DistributedOptimizer<B>::finish_backward(G* grads) {
  if (plan_.grads_sharded()) {
    // Every layer unit was reduced in its backward; the edges now (the tied embedding has
    // been summed over the embedding group).
    settle_unit(0);
    settle_unit(1);
    for (std::size_t i = 0; i < plan_.buckets.size(); ++i) {
      if (!plan_.edge[i]) continue;
      const Range& b = plan_.buckets[i];
      pending_[i] =
          dp_.ireduce_scatter(edge_grad(b.begin), gshard_ + plan_.shard_offset[i],
                              std::size_t(b.size() / plan_.dp_size), dtype_of<G>(), comm::ReduceOp::sum);
    }
    for (auto& w : pending_) dp_.wait(w);
    return;
  }
  for (std::size_t i = 0; i < plan_.buckets.size(); ++i) launch(i, grads);
  for (std::size_t i = 0; i < plan_.buckets.size(); ++i) {
    dp_.wait(pending_[i]);
    if (!plan_.reduce_bf16) continue;
    const Range& b = plan_.buckets[i];
    if (plan_.sharded())
      be_.cast_from_bf16(gshard_ + plan_.shard_offset[i],
                         static_cast<char*>(stage_shard_) + std::size_t(plan_.shard_offset[i]) * 2,
                         b.size() / plan_.dp_size);
    else
      be_.cast_from_bf16(grads + b.begin, static_cast<char*>(stage_) + std::size_t(b.begin) * 2, b.size());
  }
  std::fill(launched_.begin(), launched_.end(), false);
}

template <class B>
const typename B::Grad* DistributedOptimizer<B>::reduced_grads(std::size_t piece, const G* grads) const {
  // ZeRO-1: the shard buffer holds the owned pieces; indexing it by the flat offset of the
  // piece's start gives the same addressing as the full buffer.
  return plan_.sharded() ? gshard_ + plan_.shard_offset[piece] - plan_.owned[piece].begin : grads;
}

template <class B>
double DistributedOptimizer<B>::local_grad_sq(const G* grads) const {
  if (grads != norm_grads_ || norm_spans_.empty()) {  // the spans depend only on the buffers: built once
    norm_spans_.clear();
    for (std::size_t i = 0; i < plan_.owned.size(); ++i) {
      const G* g = reduced_grads(i, grads);
      for (const Range& n : plan_.norm_ranges) {
        const Range r = plan_.owned[i].intersect(n).intersect({0, plan_.numel});
        if (r.size() > 0) norm_spans_.push_back({g + r.begin, r.size()});
      }
    }
    norm_grads_ = grads;
  }
  return be_.sum_squares(norm_spans_);
}

template <class B>
void DistributedOptimizer<B>::step(A* params, const G* grads, double lr, double grad_scale) {
  ++step_;
  const model::AdamWStep s{lr, optim_.beta1, optim_.beta2, optim_.eps, grad_scale, step_};
  be_.adamw(master_, plan_.params_sharded() ? pshard_ : params, plan_.sharded() ? gshard_ : grads,
            plan_.sharded(), m_, v_, plan_.segments, device_segments_, s);
  gather_start = gather_end = be_.mark();
  if (plan_.params_sharded()) {  // ZeRO-3: gathered again before use
    for (int k = 0; k < 2; ++k) dp_.wait(gather_work_[k]);
    gather_bucket_[0] = gather_bucket_[1] = SIZE_MAX;
    edges_fresh_ = false;
    return;
  }
  if (!plan_.sharded()) return;
  // ZeRO-1: every rank updated its pieces of the compute copy; gather each bucket.
  gather_start = be_.mark();
  for (std::size_t i = 0; i < plan_.buckets.size(); ++i) {
    const Range& b = plan_.buckets[i];
    const Range piece = shard_piece(b, plan_.dp_size, plan_.dp_rank);
    pending_[i] =
        dp_.iall_gather(params + piece.begin, params + b.begin, std::size_t(piece.size()), dtype_of<A>());
  }
  for (auto& w : pending_) dp_.wait(w);
  gather_end = be_.mark();
}

template <class B>
void DistributedOptimizer<B>::set_master(const float* flat_host) {
  if (!master_) return;
  for (std::size_t i = 0; i < plan_.owned.size(); ++i) {
    const Range r = plan_.owned[i].intersect({0, plan_.numel});  // the padding stays zero
    if (r.size() > 0)
      be_.upload(master_ + plan_.shard_offset[i], flat_host + r.begin, std::size_t(r.size()) * sizeof(float));
  }
  be_.synchronize();
}

template <class B>
void DistributedOptimizer<B>::download_shard(float* host) const {
  STRATA_CHECK(gshard_, "download_shard: the optimizer is not sharded");
  be_.download(host, gshard_, std::size_t(plan_.state_elems) * sizeof(float));
  be_.synchronize();
}

}  // namespace strata::parallel
