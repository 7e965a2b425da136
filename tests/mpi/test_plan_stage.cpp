// The planner's CPU plan of a pipeline rank (plan::strata_cpu_stage_plan, what predict_stage_memory
// uses for fp32) against the real PipelineEngine on every rank of the grid: the bytes the trainer
// logs as planned (parameters + gradients, optimizer state, activations and engine buffers) must
// agree up to the optimizer's unaligned state_bytes() (< 64 bytes per tensor and chunk).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
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
};

void check(const Case& c) {
  const config::ModelConfig model =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/bench_layouts.yaml");
  config::ParallelConfig par;
  par.tp = c.tp, par.pp = c.pp, par.dp = c.dp, par.virtual_stages = c.v, par.schedule = c.schedule;
  par.micro_batch_size = 2, par.sequence_parallel = c.sp, par.zero_stage = c.zero;
  const int seq = 128, microbatches = 16 / (2 * c.dp);
  comm::RankGrid grid(MPI_COMM_WORLD, c.tp, c.pp, c.dp);
  const parallel::CpuEngine engine(model, par, config::OptimConfig{}, seq, microbatches, grid);
  // On the CPU the host staging is the engine's memory too.
  const double host = double(engine.plan().host.total_bytes());
  const double real =
      double(engine.parameter_bytes() + engine.optimizer_bytes() + engine.activation_bytes()) + host;
  const plan::CpuStagePlan p =
      plan::strata_cpu_stage_plan(model, par, c.schedule, microbatches, seq, grid.coord().pp_rank);
  SCOPED_TRACE("tp" + std::to_string(c.tp) + " pp" + std::to_string(c.pp) + " dp" + std::to_string(c.dp) +
               " v" + std::to_string(c.v) + " stage " + std::to_string(grid.coord().pp_rank));
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
  };
  int ran = 0;
  for (const Case& c : cases) {
    if (c.tp * c.pp * c.dp != n) continue;
    check(c);
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no case for " << n << " ranks";
}

}  // namespace
}  // namespace strata
