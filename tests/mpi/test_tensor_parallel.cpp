// Tensor parallelism (with and without sequence parallelism) against one rank, in double:
// the same loss, and every shard's gradient equal to the matching slice of the single-rank
// gradient. Runs on 2 and 4 ranks (tp = world size).
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_test_util.hpp"

#include <cmath>
#include <vector>

#include "../tiny_models.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/core/rng.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;
using config::ModelConfig;

namespace {

using test::world_size;

ModelConfig gpt_like() { return test::tp_gpt_tiny(); }
ModelConfig llama_like() { return test::tp_llama_tiny(gpt_like()); }

void check_against_single_rank(ModelConfig cfg, bool sequence_parallel, bool recompute) {
  if (recompute) cfg.recompute = config::RecomputeKind::full;
  const int tp = world_size();
  comm::RankGrid grid(MPI_COMM_WORLD, tp, 1, 1);
  const int B = 2, T = 6;
  std::vector<std::int32_t> tokens(B * T), targets(B * T);
  const core::CounterRng rng(17, "tp.batch");
  for (int i = 0; i < B * T; ++i) {
    tokens[std::size_t(i)] = std::int32_t(rng.below(std::uint64_t(cfg.vocab_size), std::uint64_t(i)));
    targets[std::size_t(i)] =
        i % 5 == 2 ? -1 : std::int32_t(rng.below(std::uint64_t(cfg.vocab_size), std::uint64_t(i), 1));
  }
  model::Transformer<double> single(cfg, B, T);
  single.init_parameters(3);
  single.zero_grads();
  const auto ref = single.forward_backward(tokens.data(), targets.data(), 0.1);

  model::ChunkPlacement place;
  place.tp_size = tp;
  place.tp_rank = grid.coord().tp_rank;
  place.sequence_parallel = sequence_parallel;
  model::Transformer<double> shard(cfg, B, T, place, &grid.tp_group());
  shard.init_parameters(3);
  shard.zero_grads();
  const auto got = shard.forward_backward(tokens.data(), targets.data(), 0.1);
  shard.reduce_sequence_parallel_grads();
  EXPECT_NEAR(got.sum, ref.sum, 1e-11 * std::abs(ref.sum)) << cfg.name;
  EXPECT_EQ(got.count, ref.count);

  for (const model::ParamInfo& p : shard.table().entries()) {
    const model::ParamInfo& q = single.table().get(p.name);
    const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
    for (std::int64_t i = 0; i < p.numel; ++i) {
      const double g = shard.grads()[std::size_t(p.offset + i)];
      const double w = shard.params()[std::size_t(p.offset + i)];
      if (i >= real) {  // vocabulary padding: zero weight, no gradient
        ASSERT_EQ(g, 0.0) << p.name;
        ASSERT_EQ(w, 0.0) << p.name;
        continue;
      }
      const std::size_t j = std::size_t(q.offset + p.global_index(i));
      ASSERT_EQ(w, single.params()[j]) << p.name << "[" << i << "]: initialisation differs";
      // Double precision; the sums run in a different order across ranks: 1e-12 relative.
      ASSERT_NEAR(g, single.grads()[j], 1e-12 + 1e-9 * std::abs(single.grads()[j]))
          << cfg.name << " sp=" << sequence_parallel << " " << p.name << "[" << i << "]";
    }
  }
}

}  // namespace

TEST(TensorParallel, GptStyleMatchesOneRank) { check_against_single_rank(gpt_like(), false, false); }
TEST(TensorParallel, GptStyleWithSequenceParallelMatchesOneRank) {
  check_against_single_rank(gpt_like(), true, false);
}
TEST(TensorParallel, LlamaStyleGqaMatchesOneRank) { check_against_single_rank(llama_like(), false, false); }
TEST(TensorParallel, LlamaStyleWithSequenceParallelAndRecomputeMatchesOneRank) {
  check_against_single_rank(llama_like(), true, true);
}
