// Data-parallel gradient reduction, the global gradient norm and AdamW on the GPU: the
// device counterpart of DistributedOptimizer (distributed_optimizer.hpp), with the same
// buckets (make_buckets: from the end of the flat buffer, so backward completes them in
// launch order) and the same ZeRO-1 pieces (shard_piece: DP rank r owns piece r of every
// bucket).
//
//   zero_stage 0  iall_reduce of each bucket in place in `grads`; every rank updates all.
//   zero_stage 1  ireduce_scatter of each bucket into this rank's slot of `gshard`; AdamW on
//                 the owned pieces (fp32 master, m, v: 1/dp of the total); then iall_gather
//                 of the bf16 parameters bucket by bucket.
//   bf16 reduce   the bucket is cast to a bf16 staging copy, reduced in bf16 (half the
//                 bytes), and cast back into the fp32 gradients (or shard) after the wait.
// The collectives are the non-blocking forms: they run on the DP communicator's stream after
// the compute stream's current point, overlapping the rest of backward; wait() makes the
// compute stream (not the host) wait for them. dp == 1: no communication at all.
#include <cmath>

#include "gpu_engine_impl.hpp"
#include "strata/kernels/cuda/elementwise.hpp"
#include "strata/optim/optimizer.hpp"

namespace strata::parallel {

void GpuEngine::Impl::plan_optimizer() {
  const std::int64_t bucket_elems = std::int64_t(par.bucket_mb * 1024 * 1024 / sizeof(float));
  buckets = make_buckets(numel, bucket_elems, dp_size);
  launched.assign(buckets.size(), false);
  pending.resize(buckets.size());
  if (zero1)
    for (const Range& b : buckets) owned.push_back(shard_piece(b, dp_size, dp_rank));
  else
    owned.push_back({0, padded});
  state_elems = 0;
  for (const Range& r : owned) {
    shard_offset.push_back(state_elems);
    state_elems += r.size();
  }
  // AdamW segments: the owned pieces cut at ParamGroup boundaries (one weight decay each).
  const std::vector<optim::ParamGroup> groups = optim::make_param_groups(table, opt);
  for (std::size_t i = 0; i < owned.size(); ++i)
    for (const optim::ParamGroup& grp : groups) {
      const Range r = owned[i].intersect({grp.offset, grp.offset + grp.numel});
      if (r.size() <= 0) continue;
      segments_host.push_back({r.begin, shard_offset[i] + (r.begin - owned[i].begin), r.size(),
                               float(grp.weight_decay)});
      max_segment = std::max(max_segment, r.size());
    }
  optim_plan.add("master.f32", {state_elems}, DType::f32, "persistent");
  optim_plan.add("adam.m", {state_elems}, DType::f32, "persistent");
  optim_plan.add("adam.v", {state_elems}, DType::f32, "persistent");
  if (zero1) optim_plan.add("grad.shard", {state_elems}, DType::f32, "step");
  if (bf16_reduce) {
    optim_plan.add("grad.stage_bf16", {padded}, DType::bf16, "step");
    if (zero1) optim_plan.add("grad.shard_bf16", {state_elems}, DType::bf16, "step");
  }
  // AdamWSegment is 32 bytes (three int64 and a float, padded): stored as u64 words.
  static_assert(sizeof(kc::AdamWSegment) % sizeof(std::uint64_t) == 0, "AdamWSegment size");
  const std::int64_t words = std::int64_t(std::max<std::size_t>(1, segments_host.size()) * sizeof(kc::AdamWSegment) /
                                          sizeof(std::uint64_t));
  optim_plan.add("adamw.segments", {words}, DType::u64, "persistent");
  optim_plan.add("grad_norm.sq", {1}, DType::f32, "step");
  host_plan.add("grad_norm.sq", {1}, DType::f32, "step");
}

void GpuEngine::Impl::bind_optimizer() {
  auto fp = [&](const char* n) { return static_cast<float*>(optim_plan.tensor(n).raw()); };
  master = fp("master.f32");
  adam_m = fp("adam.m");
  adam_v = fp("adam.v");
  if (zero1) gshard = fp("grad.shard");
  if (bf16_reduce) {
    stage = static_cast<bf16*>(optim_plan.tensor("grad.stage_bf16").raw());
    if (zero1) stage_shard = static_cast<bf16*>(optim_plan.tensor("grad.shard_bf16").raw());
  }
  segments = static_cast<kc::AdamWSegment*>(optim_plan.tensor("adamw.segments").raw());
  if (!segments_host.empty()) {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(segments, segments_host.data(), segments_host.size() * sizeof(kc::AdamWSegment),
                                      cudaMemcpyHostToDevice, s));
    stream->synchronize("GpuEngine: AdamW segment upload");
  }
  norm_dev = fp("grad_norm.sq");
  norm_host = static_cast<float*>(host_plan.tensor("grad_norm.sq").raw());
  // The gradient ranges this rank counts in the global norm (DistributedOptimizer::
  // local_grad_sq): the tensors whose counts_in_norm is set (TP-replicated ones on TP rank 0
  // only), within the owned pieces, read where the reduced gradients live.
  std::vector<Range> norm_ranges;
  for (const auto& p : table.entries()) {
    if (!p.counts_in_norm) continue;
    if (!norm_ranges.empty() && norm_ranges.back().end == p.offset) norm_ranges.back().end += p.numel;
    else norm_ranges.push_back({p.offset, p.offset + p.numel});
  }
  for (std::size_t i = 0; i < owned.size(); ++i)
    for (const Range& n : norm_ranges) {
      const Range r = owned[i].intersect(n).intersect({0, numel});
      if (r.size() <= 0) continue;
      const float* base = zero1 ? gshard + shard_offset[i] + (r.begin - owned[i].begin) : grads + r.begin;
      norm_spans.push_back({base, r.size()});
    }
}

void GpuEngine::Impl::launch_bucket(std::size_t i) {
  if (launched[i]) return;
  launched[i] = true;
  if (!dp_comm) return;
  const Range& b = buckets[i];
  const std::size_t piece = std::size_t(b.size() / dp_size);
  if (bf16_reduce) {
    // The cast runs on the compute stream before the collective's start event.
    kc::cast_f32_to_bf16(stage + b.begin, grads + b.begin, b.size(), s);
    if (zero1)
      pending[i] = dp_comm->ireduce_scatter(stage + b.begin, stage_shard + shard_offset[i], piece, DType::bf16,
                                            comm::ReduceOp::sum);
    else
      pending[i] = dp_comm->iall_reduce(stage + b.begin, std::size_t(b.size()), DType::bf16, comm::ReduceOp::sum);
  } else if (zero1) {
    pending[i] = dp_comm->ireduce_scatter(grads + b.begin, gshard + shard_offset[i], piece, DType::f32,
                                          comm::ReduceOp::sum);
  } else {
    pending[i] = dp_comm->iall_reduce(grads + b.begin, std::size_t(b.size()), DType::f32, comm::ReduceOp::sum);
  }
}

void GpuEngine::Impl::grads_ready_from(std::int64_t offset) {
  if (!final_backward) return;
  for (std::size_t i = 0; i < buckets.size(); ++i)
    if (!launched[i] && buckets[i].begin >= offset) launch_bucket(i);
}

void GpuEngine::Impl::finish_backward() {
  for (std::size_t i = 0; i < buckets.size(); ++i) launch_bucket(i);  // what is left (the embedding)
  if (dp_comm)
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      dp_comm->wait(pending[i]);  // the compute stream waits for bucket i
      if (!bf16_reduce) continue;
      const Range& b = buckets[i];
      if (zero1) kc::cast_bf16_to_f32(gshard + shard_offset[i], stage_shard + shard_offset[i], b.size() / dp_size, s);
      else kc::cast_bf16_to_f32(grads + b.begin, stage + b.begin, b.size(), s);
    }
  std::fill(launched.begin(), launched.end(), false);
}

double GpuEngine::Impl::grad_norm() {
  STRATA_CUDA_CHECK(cudaMemsetAsync(norm_dev, 0, sizeof(float), s));
  for (const Span& sp : norm_spans) kc::sum_squares_f32(norm_dev, sp.p, sp.n, s);
  STRATA_CUDA_CHECK(cudaMemcpyAsync(norm_host, norm_dev, sizeof(float), cudaMemcpyDeviceToHost, s));
  stream->synchronize("GpuEngine: gradient norm");
  double sq = double(*norm_host);
  // Under ZeRO-1 every rank holds distinct pieces: sum over the world. Otherwise the DP
  // replicas hold the same reduced gradients: sum over the TP group only (pp = 1).
  // One number: MPI on the host (PipelineEngine::grad_norm's rule).
  if (zero1) grid.world_group().all_reduce(&sq, 1);
  else grid.tp_group().all_reduce(&sq, 1);
  return std::sqrt(sq);
}

double GpuEngine::Impl::optimizer_step(double lr, double grad_scale) {
  ++step;
  const kc::AdamWStep p{float(lr), float(opt.beta1), float(opt.beta2), float(opt.eps), float(grad_scale), step};
  if (!segments_host.empty())
    kc::adamw_update(master, params, zero1 ? gshard : grads, adam_m, adam_v, segments, int(segments_host.size()),
                     max_segment, zero1, p, s);
  if (!zero1) return 0.0;
  // ZeRO-1: every rank updated its pieces of the bf16 parameters; gather each bucket.
  ev_gather_start->record(s);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const Range& b = buckets[i];
    const Range piece = shard_piece(b, dp_size, dp_rank);
    pending[i] = dp_comm->iall_gather(params + piece.begin, params + b.begin, std::size_t(piece.size()), DType::bf16);
  }
  for (auto& work : pending) dp_comm->wait(work);
  ev_gather_end->record(s);
  ev_gather_end->synchronize();
  return ev_gather_end->elapsed_ms_since(*ev_gather_start) * 1e-3;
}

void GpuEngine::Impl::gather_pieces(const float* dev_pieces, float* host) {
  stream->synchronize("GpuEngine: download");
  if (!zero1) {
    STRATA_CUDA_CHECK(cudaMemcpy(host, dev_pieces, std::size_t(numel) * sizeof(float), cudaMemcpyDeviceToHost));
    return;
  }
  // ZeRO-1: download this rank's pieces, then all-gather every bucket over DP with MPI on the
  // host (tests and checkpoints: not on the step's path).
  std::vector<float> mine(static_cast<std::size_t>(state_elems));
  STRATA_CUDA_CHECK(cudaMemcpy(mine.data(), dev_pieces, mine.size() * sizeof(float), cudaMemcpyDeviceToHost));
  std::vector<float> bucket;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const Range& b = buckets[i];
    bucket.resize(std::size_t(b.size()));
    grid.dp_group().all_gather(mine.data() + shard_offset[i], bucket.data(), std::size_t(b.size() / dp_size),
                               DType::f32);
    const std::int64_t end = std::min(b.end, numel);
    for (std::int64_t j = b.begin; j < end; ++j) host[j] = bucket[std::size_t(j - b.begin)];
  }
}

}  // namespace strata::parallel
