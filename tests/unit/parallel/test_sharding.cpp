// ZeRO-2/3's sharding plan (distributed_optimizer.hpp): with the parameter table aligned to dp
// (ChunkPlacement::unit_multiple), the buckets are the chunk's units (the tensors before the
// first layer, each layer, the tensors after the last), in launch order from the end, each
// split into dp equal pieces; the edges are marked; ZeRO-3's AdamW segments address the
// sharded compute copy like the state.
#include <gtest/gtest.h>

#include "strata/core/error.hpp"
#include "strata/model/stage_plan.hpp"
#include "strata/parallel/distributed_optimizer.hpp"

using namespace strata;

namespace {

config::ModelConfig tiny() {
  config::ModelConfig m;
  m.num_layers = 3, m.d_model = 16, m.num_heads = 2, m.vocab_size = 37, m.max_seq_len = 8;
  return m;
}

TEST(Sharding, ZeroTwoBucketsAreTheUnitsOfTheChunk) {
  const int dp = 4;
  model::ChunkPlacement place;
  place.unit_multiple = dp;
  const model::ParameterTable t = model::make_parameter_table(tiny(), place);
  ASSERT_EQ(t.numel() % dp, 0);
  config::ParallelConfig par;
  par.zero_stage = 2;
  for (int r = 0; r < dp; ++r) {
    const parallel::ShardingPlan s = parallel::make_sharding_plan(t, config::OptimConfig{}, par, dp, r);
    ASSERT_TRUE(s.grads_sharded());
    EXPECT_FALSE(s.params_sharded());
    // suffix (final norm, tied head = wte, so just the norm), layers 2, 1, 0, prefix (embedding)
    ASSERT_EQ(s.buckets.size(), 5u);
    EXPECT_EQ(s.prefix_end, t.layer_range(0).first);
    EXPECT_EQ(s.buckets.back(), (parallel::Range{0, s.prefix_end}));
    for (int l = 0; l < 3; ++l) {
      const parallel::Range& b = s.buckets[std::size_t(3 - l)];
      EXPECT_EQ(b.begin, t.layer_range(l).first);
      EXPECT_GE(b.end, t.layer_range(l).second);
      EXPECT_LT(b.end, t.layer_range(l).second + dp);
      EXPECT_FALSE(s.edge[std::size_t(3 - l)]);
    }
    EXPECT_TRUE(s.edge.front() && s.edge.back());
    EXPECT_EQ(s.buckets.front(), (parallel::Range{s.suffix_begin, s.padded}));
    EXPECT_EQ(s.state_elems * dp, s.padded);  // 1/dp of everything
    EXPECT_EQ(s.edge_elems(), s.prefix_end + s.padded - s.suffix_begin);
    for (std::size_t i = 0; i < s.buckets.size(); ++i) {
      EXPECT_EQ(s.buckets[i].size() % dp, 0);
      EXPECT_EQ(s.owned[i], parallel::shard_piece(s.buckets[i], dp, r));
    }
    // ZeRO-2: segments address the full compute copy (flat offsets inside the owned pieces);
    // ZeRO-3: the shard, like the state.
    for (const model::AdamWSegment& g : s.segments) {
      bool inside = false;
      for (const parallel::Range& o : s.owned)
        inside |= o.begin <= g.param_offset && g.param_offset + g.numel <= o.end;
      EXPECT_TRUE(inside);
    }
    par.zero_stage = 3;
    const parallel::ShardingPlan s3 = parallel::make_sharding_plan(t, config::OptimConfig{}, par, dp, r);
    EXPECT_TRUE(s3.params_sharded());
    ASSERT_EQ(s3.segments.size(), s.segments.size());
    for (std::size_t i = 0; i < s3.segments.size(); ++i) {
      EXPECT_EQ(s3.segments[i].param_offset, s3.segments[i].state_offset);
      EXPECT_EQ(s3.segments[i].state_offset, s.segments[i].state_offset);
    }
    par.zero_stage = 2;
  }
}

TEST(Sharding, ZeroTwoRefusesATableNotAlignedToDp) {
  const model::ParameterTable t = model::make_parameter_table(tiny());  // packed
  config::ParallelConfig par;
  par.zero_stage = 2;
  EXPECT_THROW(parallel::make_sharding_plan(t, config::OptimConfig{}, par, 7, 0), Error);  // 720 % 7 != 0
}

TEST(Sharding, OptimizerMemoryOfZeroTwoAndThree) {
  const int dp = 2;
  model::ChunkPlacement place;
  place.unit_multiple = dp;
  const model::ParameterTable t = model::make_parameter_table(tiny(), place);
  config::ParallelConfig par;
  par.zero_stage = 3;
  const parallel::ShardingPlan s = parallel::make_sharding_plan(t, config::OptimConfig{}, par, dp, 1);
  const parallel::OptimizerMemory m = parallel::plan_optimizer_memory(s, model::cpu_backend_spec(DType::f32));
  auto elems = [&](std::size_t i) { return m.plan.entries()[i].nbytes / sizeof(float); };
  EXPECT_EQ(elems(m.pshard), std::size_t(s.padded / dp));
  EXPECT_EQ(elems(m.gshard), std::size_t(s.padded / dp));
  EXPECT_EQ(elems(m.m), std::size_t(s.padded / dp));
  EXPECT_EQ(elems(m.gather[0]), std::size_t(s.max_layer_unit()));
  EXPECT_EQ(elems(m.unit[1]), std::size_t(s.max_layer_unit()));
  EXPECT_EQ(elems(m.unit_piece[0]), std::size_t(s.max_layer_unit() / dp));
  EXPECT_EQ(elems(m.pedges), std::size_t(s.edge_elems()));
  EXPECT_EQ(elems(m.edges), std::size_t(s.edge_elems()));
  EXPECT_GT(m.parameter_bytes(), 0u);
  EXPECT_GT(m.gradient_bytes(), 0u);
  EXPECT_LE(m.parameter_bytes() + m.gradient_bytes(), m.plan.total_bytes());
}

}  // namespace
