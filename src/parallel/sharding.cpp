// The sharding plan of a chunk's flat buffer (distributed_optimizer.hpp): buckets, ZeRO-1
// pieces, AdamW segments, norm ranges, and the optimizer's memory plan. Plain values, shared
// by every backend, the checkpoints and the dry run.
#include <algorithm>

#include "strata/core/error.hpp"
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

namespace {
// ZeRO-2's buckets: the units of the chunk (the tensors before the first layer, each layer,
// the tensors after the last), in launch order; sets the plan's edge bounds.
std::vector<Range> make_unit_buckets(const model::ParameterTable& table, int dp, ShardingPlan& s) {
  const model::ChunkOffsets& o = table.offsets();
  const int n = int(o.layers.size());
  std::vector<std::int64_t> cuts{0};
  for (int l = 0; l < n; ++l) cuts.push_back(table.layer_range(o.first_layer + l).first);
  s.prefix_end = n > 0 ? cuts[1] : 0;
  s.suffix_begin = n > 0 ? padded_size(table.layer_range(o.first_layer + n - 1).second, dp) : 0;
  cuts.push_back(s.suffix_begin);
  cuts.push_back(s.padded);
  std::vector<Range> out;
  for (std::size_t i = cuts.size() - 1; i > 0; --i) {
    const Range r{cuts[i - 1], cuts[i]};
    STRATA_CHECK(r.begin % dp == 0 && r.end % dp == 0, "ZeRO-2: unit [", r.begin, ", ", r.end,
                 ") is not aligned to dp ", dp, " (the parameter table was built without unit_multiple)");
    if (r.size() > 0) out.push_back(r);
  }
  return out;
}
}  // namespace

std::int64_t ShardingPlan::max_layer_unit() const {
  std::int64_t m = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i)
    if (!edge[i]) m = std::max(m, buckets[i].size());
  return m;
}

std::size_t ShardingPlan::bucket_at(std::int64_t begin) const {
  for (std::size_t i = 0; i < buckets.size(); ++i)
    if (buckets[i].begin == begin) return i;
  throw make_error("sharding plan: no bucket starts at flat offset ", begin);
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
  s.buckets =
      s.grads_sharded() ? make_unit_buckets(table, dp_size, s) : make_buckets(s.numel, bucket_elems, dp_size);
  s.edge.assign(s.buckets.size(), false);
  for (std::size_t i = 0; i < s.buckets.size() && s.grads_sharded(); ++i)
    s.edge[i] = s.buckets[i].end <= s.prefix_end || s.buckets[i].begin >= s.suffix_begin;
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
      const std::int64_t state = s.shard_offset[i] + (r.begin - s.owned[i].begin);
      // ZeRO-3: the compute copy is sharded too, addressed like the state.
      s.segments.push_back({s.params_sharded() ? state : r.begin, state, r.size(), g.weight_decay});
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

std::size_t OptimizerMemory::gradient_bytes() const {
  std::size_t b = 0;
  for (std::size_t i = 0; i < plan.entries().size(); ++i)
    if (is_gradient(i)) b += (plan.entries()[i].nbytes + 63) / 64 * 64;
  return b;
}

std::size_t OptimizerMemory::parameter_bytes() const {
  std::size_t b = 0;
  for (std::size_t i = 0; i < plan.entries().size(); ++i)
    if (is_parameter(i)) b += (plan.entries()[i].nbytes + 63) / 64 * 64;
  return b;
}

OptimizerMemory plan_optimizer_memory(const ShardingPlan& s, const model::BackendSpec& spec) {
  OptimizerMemory m;
  const std::int64_t n = s.state_elems;
  if (spec.master_weights) m.master = m.plan.add("master.f32", {n}, DType::f32, "persistent");
  m.m = m.plan.add("adam.m", {n}, DType::f32, "persistent");
  m.v = m.plan.add("adam.v", {n}, DType::f32, "persistent");
  if (s.sharded()) m.gshard = m.plan.add("grad.shard", {n}, spec.grad, "step");
  if (s.params_sharded()) {
    // ZeRO-3: this rank's pieces of the compute copy, the edges' gathered parameters (for
    // the step) and two gather buffers for the layers (one in use, one being prefetched).
    m.pshard = m.plan.add("param.shard", {n}, spec.act, "persistent");
    m.pedges = m.plan.add("param.edges", {s.edge_elems()}, spec.act, "step");
    for (int k = 0; k < 2; ++k)
      m.gather[k] = m.plan.add("param.gather" + std::to_string(k), {s.max_layer_unit()}, spec.act, "step");
  }
  if (s.grads_sharded()) {
    // ZeRO-2: the edges' gradients for the step, two unit buffers for the layers and the
    // piece each unit's reduce-scatter lands in before it is added to the shard.
    m.edges = m.plan.add("grad.edges", {s.edge_elems()}, spec.grad, "step");
    for (int k = 0; k < 2; ++k) {
      m.unit[k] = m.plan.add("grad.unit" + std::to_string(k), {s.max_layer_unit()}, spec.grad, "step");
      m.unit_piece[k] = m.plan.add("grad.unit_piece" + std::to_string(k), {s.max_layer_unit() / s.dp_size},
                                   spec.grad, "step");
    }
  }
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
