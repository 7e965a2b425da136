// The planner's CPU plan of a pipeline rank (plan::strata_cpu_stage_plan, what predict_stage_memory
// uses for fp32) against the real PipelineEngine on every rank of the grid: the bytes the trainer
// logs as planned (parameters + gradients, optimizer state, activations and engine buffers) must
// agree up to the optimizer's unaligned state_bytes() (< 64 bytes per tensor and chunk).
#include <gtest/gtest.h>
#include <mpi.h>

#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/parallel/pipeline.hpp"
#include "strata/plan/memory.hpp"

namespace strata {
namespace {

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

struct Case {
  int tp, pp, dp, v;
  config::PipelineSchedule schedule;
  bool sp;
  int zero;
  int cp = 1;
  config::CpMode cp_mode = config::CpMode::ring;
};

void check(const Case& c) {
  const config::ModelConfig model =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/bench_layouts.yaml");
  config::ParallelConfig par;
  par.tp = c.tp, par.pp = c.pp, par.dp = c.dp, par.virtual_stages = c.v, par.schedule = c.schedule;
  par.micro_batch_size = 2, par.sequence_parallel = c.sp, par.zero_stage = c.zero;
  par.cp = c.cp, par.cp_mode = c.cp_mode;
  const int seq = 128, microbatches = 16 / (2 * c.dp);
  comm::RankGrid grid(MPI_COMM_WORLD, c.tp, c.pp, c.dp, 600.0, c.cp);
  const parallel::CpuEngine engine(model, par, config::OptimConfig{}, seq, microbatches, grid);
  // On the CPU the host staging is the engine's memory too.
  const double host = double(engine.plan().host.total_bytes());
  const double real =
      double(engine.parameter_bytes() + engine.optimizer_bytes() + engine.activation_bytes()) + host;
  const plan::CpuStagePlan p =
      plan::strata_cpu_stage_plan(model, par, c.schedule, microbatches, seq, grid.coord().pp_rank);
  SCOPED_TRACE("tp" + std::to_string(c.tp) + " pp" + std::to_string(c.pp) + " dp" + std::to_string(c.dp) +
               " v" + std::to_string(c.v) + " cp" + std::to_string(c.cp) + " " +
               config::to_string(c.cp_mode) + " stage " + std::to_string(grid.coord().pp_rank));
  EXPECT_EQ(p.parameters_and_grads + p.activations + p.pipeline_buffers,
            double(engine.parameter_bytes() + engine.activation_bytes()) + host);
  EXPECT_LE(std::fabs(p.optimizer - double(engine.optimizer_bytes())), 128.0 * c.v);
  EXPECT_LE(std::fabs(p.trainer_planned() - real), 128.0 * c.v);
}

TEST(PlanStage, CpuStagePlanEqualsThePipelineEngineOnEveryRank) {
  using S = config::PipelineSchedule;
  const int n = world_size();
  const Case cases[] = {
      {2, 2, 2, 1, S::one_f_one_b, true, 1},
      {1, 2, 4, 2, S::interleaved_1f1b, false, 1},
      {1, 4, 2, 1, S::gpipe, false, 1},
      {1, 8, 1, 1, S::one_f_one_b, false, 0},
      {2, 2, 1, 1, S::one_f_one_b, true, 0},
      {1, 2, 2, 1, S::gpipe, false, 1},
      {1, 2, 1, 2, S::interleaved_1f1b, false, 0},
      {2, 2, 2, 1, S::one_f_one_b, true, 2},
      {1, 2, 2, 2, S::interleaved_1f1b, false, 2},
      {1, 1, 4, 1, S::one_f_one_b, false, 2},
      {2, 2, 2, 1, S::one_f_one_b, true, 3},
      {1, 2, 2, 2, S::interleaved_1f1b, false, 3},
      {1, 2, 2, 1, S::zb_h1, false, 2},
      {2, 2, 2, 1, S::zb_h1, true, 3},
      // Context parallelism: the ring's K/V blocks, or Ulysses' all-to-all buffers and its
      // whole-sequence attention buffers of 1/cp of the heads (bench_layouts: 8 heads).
      {1, 2, 1, 1, S::one_f_one_b, false, 0, 2, config::CpMode::ring},
      {1, 2, 1, 1, S::one_f_one_b, false, 0, 2, config::CpMode::ulysses},
      {2, 2, 1, 1, S::one_f_one_b, true, 0, 2, config::CpMode::ulysses},
      {1, 1, 2, 1, S::one_f_one_b, false, 1, 4, config::CpMode::ulysses},
  };
  int ran = 0;
  for (const Case& c : cases) {
    if (c.tp * c.pp * c.dp * c.cp != n) continue;
    check(c);
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no case for " << n << " ranks";
}

// ZeRO-3 on dp = the world: per rank, the parameters' compute copy, the gradient shard and
// the Adam moments are 1/dp of the padded flat buffer each, plus two gather buffers of the
// largest layer and the edges (embedding, final norm, head) for the step; the gradients add
// ZeRO-2's two layer-unit buffers (+ their 1/dp pieces) and the edges' gradient. The sizes
// are computed here from the parameter table, the planner (plan::predict_stage_memory) must
// give exactly those bytes, and the heap the engine's construction takes (glibc's
// mallinfo2, measured) must be the plan's bytes up to 1% (its own small objects; not under
// AddressSanitizer, whose allocator glibc's counters do not see).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcHeap = false;  // AddressSanitizer's allocator: mallinfo2 sees none of it
#else
constexpr bool kGlibcHeap = true;
#endif

TEST(PlanStage, ZeroThreeKeepsOneDpthPlusTheGatheredLayers) {
  const int dp = world_size();
  const config::ModelConfig model =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/bench_layouts.yaml");
  config::ParallelConfig par;
  par.dp = dp, par.micro_batch_size = 2, par.zero_stage = 3;
  const int seq = 128, microbatches = 2;
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, dp);
  model::ChunkPlacement place;
  place.unit_multiple = dp;
  const model::ParameterTable table = model::make_parameter_table(model, place);
  const std::int64_t padded = table.numel();  // aligned to dp
  ASSERT_EQ(padded % dp, 0);
  std::int64_t max_layer = 0;
  for (int l = 0; l < model.num_layers; ++l) {
    const std::int64_t next = l + 1 < model.num_layers ? table.layer_range(l + 1).first
                                                       : (table.layer_range(l).second + dp - 1) / dp * dp;
    max_layer = std::max(max_layer, next - table.layer_range(l).first);
  }
  const std::int64_t edges = table.layer_range(0).first +
                             (padded - (table.layer_range(model.num_layers - 1).second + dp - 1) / dp * dp);
  auto aligned = [](std::int64_t elems) { return double((elems * 4 + 63) / 64 * 64); };
  const double weights = aligned(padded / dp) + aligned(edges) + 2 * aligned(max_layer);
  // The unit buffers and the edges' gradient; the gradient shard is the planner's comm buffer.
  const double grads = aligned(edges) + 2 * aligned(max_layer) + 2 * aligned(max_layer / dp);
  const double moments = 2 * aligned(padded / dp);

  plan::Layout l;
  l.tp = 1, l.pp = 1, l.dp = dp, l.micro_batch = 2, l.micro_batches = microbatches, l.zero = 3;
  l.sequence_parallel = false, l.precision = config::Precision::fp32;
  const plan::MemoryBreakdown m =
      plan::predict_stage_memory(plan::Workload::of(model, seq), l, config::ClusterConfig{}, 0);
  EXPECT_EQ(m.weights, weights);
  EXPECT_EQ(m.gradients, grads);
  EXPECT_EQ(m.optimizer, moments);
  EXPECT_GE(m.comm_buffers, aligned(padded / dp));  // the gradient shard (and pipeline, host staging)
  // Against ZeRO-1 on the same ranks: the full compute copy and gradient are gone.
  l.zero = 1;
  const plan::MemoryBreakdown z1 =
      plan::predict_stage_memory(plan::Workload::of(model, seq), l, config::ClusterConfig{}, 0);
  EXPECT_LT(m.weights + m.gradients, z1.weights + z1.gradients);

  const std::size_t before = mallinfo2().uordblks + mallinfo2().hblkhd;
  {
    const parallel::CpuEngine engine(model, par, config::OptimConfig{}, seq, microbatches, grid);
    const std::size_t measured = mallinfo2().uordblks + mallinfo2().hblkhd - before;
    const double planned = double(engine.plan().device_bytes() + engine.plan().host.total_bytes());
    EXPECT_EQ(double(engine.plan().parameter_bytes()), weights + grads);
    if (kGlibcHeap) {
      EXPECT_NEAR(double(measured), planned, 0.01 * planned)
          << "measured " << measured << " planned " << planned;
    }
    if (grid.global_rank() == 0)
      std::printf(
          "ZeRO-3 dp%d: heap measured %zu B, planned %.0f B; parameters %.0f B (ZeRO-1 %.0f B), "
          "gradients %.0f B (ZeRO-1 %.0f B), moments %.0f B\n",
          dp, measured, planned, m.weights, z1.weights, m.gradients, z1.gradients, m.optimizer);
  }
}

// zb_h1 with ZeRO-2/3: the only gradient memory zb adds is what its B pass holds for the
// layer's W pass, the layers' replicated tensors (norms, row-parallel biases) of the stage,
// counted here from the parameter table; the planner's gradients are 1f1b's plus exactly those
// bytes, and the engine holds what the planner says.
TEST(PlanStage, ZeroBubbleUnderZeroTwoAndThreeAddsOnlyTheHeldNormAndBiasGradients) {
  const int n = world_size();
  const config::ModelConfig model =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/bench_layouts.yaml");
  const int seq = 128, dp = n / 2, microbatches = 16 / (2 * dp);
  for (const int zero : {2, 3}) {
    config::ParallelConfig par;
    par.pp = 2, par.dp = dp, par.micro_batch_size = 2, par.zero_stage = zero;
    par.schedule = config::PipelineSchedule::zb_h1;
    comm::RankGrid grid(MPI_COMM_WORLD, 1, 2, dp);
    const parallel::CpuEngine engine(model, par, config::OptimConfig{}, seq, microbatches, grid);
    std::int64_t held = 0;
    for (const model::ParamInfo& p : engine.plan().chunks.front().stage.table.entries())
      if (p.name.rfind("layers.", 0) == 0 && p.split == model::TpSplit::replicated) held += p.numel;
    ASSERT_GT(held, 0);
    plan::Layout l;
    l.tp = 1, l.pp = 2, l.dp = dp, l.micro_batch = 2, l.micro_batches = microbatches, l.zero = zero;
    l.zb = true, l.precision = config::Precision::fp32;
    const int stage = grid.coord().pp_rank;
    const plan::Workload w = plan::Workload::of(model, seq);
    const plan::MemoryBreakdown zb = plan::predict_stage_memory(w, l, config::ClusterConfig{}, stage);
    l.zb = false;
    const plan::MemoryBreakdown plain = plan::predict_stage_memory(w, l, config::ClusterConfig{}, stage);
    SCOPED_TRACE("ZeRO-" + std::to_string(zero) + " stage " + std::to_string(stage));
    EXPECT_EQ(zb.gradients - plain.gradients, double((held * 4 + 63) / 64 * 64));
    EXPECT_EQ(zb.weights, plain.weights);
    EXPECT_EQ(double(engine.plan().parameter_bytes()), zb.weights + zb.gradients);
  }
}

}  // namespace
}  // namespace strata
