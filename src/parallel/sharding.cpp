// The sharding plan of a chunk's flat buffer (distributed_optimizer.hpp): buckets, ZeRO-1
// pieces, AdamW segments, norm ranges, and the optimizer's memory plan. Plain values, shared
// by every backend, the checkpoints and the dry run.
#include <algorithm>

#include "strata/optim/optimizer.hpp"
#include "strata/parallel/distributed_optimizer.hpp"

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

std::vector<Range> ShardingPlan::partition() const {
  return sharded() ? owned : std::vector<Range>{shard_piece({0, padded}, dp_size, dp_rank)};
}

ShardingPlan make_sharding_plan(const model::ParameterTable& table, const config::OptimConfig& optim,
                                const config::ParallelConfig& parallel, int dp_size, int dp_rank,
                                std::vector<Range> defer) {
  ShardingPlan s;
  s.dp_size = dp_size;
  s.dp_rank = dp_rank;
  s.zero_stage = dp_size > 1 ? parallel.zero_stage : 0;
  s.reduce_bf16 = dp_size > 1 && parallel.grad_reduce_dtype == config::ReduceDType::bf16;
  s.numel = table.numel();
  s.padded = padded_size(s.numel, dp_size);
  s.deferred = std::move(defer);
  const std::int64_t bucket_elems = std::int64_t(parallel.bucket_mb * 1024 * 1024 / sizeof(float));
  s.buckets = make_buckets(s.numel, bucket_elems, dp_size);
  if (s.sharded())
    for (const Range& b : s.buckets) s.owned.push_back(shard_piece(b, dp_size, dp_rank));
  else
    s.owned.push_back({0, s.padded});
  for (const Range& r : s.owned) {
    s.shard_offset.push_back(s.state_elems);
    s.state_elems += r.size();
  }
  // AdamW segments: the owned pieces cut at ParamGroup boundaries (one weight decay each), in
  // piece order then group order (the order the updates run in).
  const std::vector<optim::ParamGroup> groups = optim::make_param_groups(table, optim);
  for (std::size_t i = 0; i < s.owned.size(); ++i)
    for (const optim::ParamGroup& g : groups) {
      const Range r = s.owned[i].intersect({g.offset, g.offset + g.numel});
      if (r.size() <= 0) continue;
      s.segments.push_back(
          {r.begin, s.shard_offset[i] + (r.begin - s.owned[i].begin), r.size(), g.weight_decay});
    }
  // Tensors counted in the global gradient norm, merged into ranges.
  for (const auto& p : table.entries()) {
    if (!p.counts_in_norm) continue;
    if (!s.norm_ranges.empty() && s.norm_ranges.back().end == p.offset)
      s.norm_ranges.back().end += p.numel;
    else
      s.norm_ranges.push_back({p.offset, p.offset + p.numel});
  }
  return s;
}

OptimizerMemory plan_optimizer_memory(const ShardingPlan& s, const model::BackendSpec& spec) {
  OptimizerMemory m;
  const std::int64_t n = s.state_elems;
  if (spec.master_weights) m.master = m.plan.add("master.f32", {n}, DType::f32, "persistent");
  m.m = m.plan.add("adam.m", {n}, DType::f32, "persistent");
  m.v = m.plan.add("adam.v", {n}, DType::f32, "persistent");
  if (s.sharded()) m.gshard = m.plan.add("grad.shard", {n}, spec.grad, "step");
  if (s.reduce_bf16) {
    m.stage = m.plan.add("grad.stage_bf16", {s.padded}, DType::bf16, "step");
    if (s.sharded()) m.stage_shard = m.plan.add("grad.shard_bf16", {n}, DType::bf16, "step");
  }
  if (!spec.host_memory) {
    // The segment table the device's AdamW kernel reads: 32-byte records stored as u64 words.
    static_assert(sizeof(model::AdamWSegment) == 4 * sizeof(std::uint64_t),
                  "AdamWSegment is four 8-byte words");
    const std::int64_t words = std::int64_t(std::max<std::size_t>(1, s.segments.size())) * 4;
    m.segments = m.plan.add("adamw.segments", {words}, DType::u64, "persistent");
  }
  return m;
}

}  // namespace strata::parallel
