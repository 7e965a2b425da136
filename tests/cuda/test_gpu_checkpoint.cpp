// Checkpoints of GPU runs (ckpt::EngineCheckpointer over the CUDA engine): the trainer on one GPU
// saves at step 3; the file holds its fp32 master weights exactly, loads into the CPU trainer
// and into a GPU trainer, and both continue to step 4 with the loss of the uninterrupted run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "../gpu_engine_checks.hpp"
#include "../unit/mpi_singleton.hpp"
#include "cuda_test_util.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/model/parameters.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

config::JobConfig gpu_job(const fs::path& dir, int steps) {
  config::JobConfig j;
  j.model = test::gpu_llama();
  j.parallel.micro_batch_size = 2;
  j.parallel.global_batch_size = 4;  // two micro-batches per step
  j.optim.lr = 1e-3;
  j.optim.warmup_steps = 0;
  j.train.steps = steps;
  j.train.seq_len = 32;
  j.train.seed = 11;
  j.train.log_interval = 100;
  j.train.out_dir = (dir / "run").string();
  j.ckpt.dir = (dir / "ckpt").string();
  j.ckpt.interval = 3;
  j.ckpt.save_at_end = false;
  j.eval.windows = 0;
  j.data.source = config::DataSource::synthetic;
  j.hardware.device = config::DeviceKind::cuda;
  j.hardware.threads = 1;
  return j;
}

class GpuCheckpointTest : public test::CudaTest {};

TEST_F(GpuCheckpointTest, SavedOnGpuLoadsOnCpuAndOnGpuAndContinues) {
  const fs::path dir = fs::temp_directory_path() / ("strata_gpu_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // The uninterrupted GPU run of 4 steps, checkpointing at step 3.
  const train::TrainSummary full = train::run_training(gpu_job(dir, 4), MPI_COMM_WORLD);
  ASSERT_EQ(full.steps.size(), 4u);
  const std::string file = (dir / "ckpt" / "step_00000003.h5").string();
  ASSERT_TRUE(fs::exists(file));

  // The run stopped at step 3 holds exactly the master weights the file stores.
  const fs::path dir3 = dir / "three";
  config::JobConfig three = gpu_job(dir3, 3);
  const train::TrainSummary s3 = train::run_training(three, MPI_COMM_WORLD);
  const model::ParameterTable table = model::make_parameter_table(three.model);  // the CPU layout
  std::vector<float> stored(std::size_t(table.numel()));
  comm::RankGrid self(MPI_COMM_SELF, 1, 1, 1);
  ckpt::load_parameters((dir3 / "ckpt" / "step_00000003.h5").string(), table, stored.data(), self);
  model::ParameterTable gpu_table;  // the GPU run's layout (vocabulary padded to 64 rows)
  for (const model::ParamInfo& p : s3.final_param_info) gpu_table.add(p);
  ASSERT_EQ(std::int64_t(s3.final_params.size()), gpu_table.numel());
  test::expect_same_values(gpu_table, s3.final_params, table, stored);

  // Resumed on the GPU: step 4 repeats the uninterrupted run's step 4 (same weights, moments,
  // Adam step and data position; only fp32 atomic-addition order differs).
  config::JobConfig resume_gpu = gpu_job(dir / "gpu", 4);
  resume_gpu.train.resume = file;
  const train::TrainSummary g = train::run_training(resume_gpu, MPI_COMM_WORLD);
  EXPECT_EQ(g.first_step, 4);
  ASSERT_EQ(g.steps.size(), 1u);
  EXPECT_NEAR(g.steps[0].loss, full.steps[3].loss, 1e-4 * full.steps[3].loss);

  // Resumed on the CPU (fp32 compute): step 4's loss within bf16 tolerance of the GPU's.
  config::JobConfig resume_cpu = resume_gpu;
  resume_cpu.hardware.device = config::DeviceKind::cpu;
  resume_cpu.train.out_dir = (dir / "cpu" / "run").string();
  resume_cpu.ckpt.dir = (dir / "cpu" / "ckpt").string();
  const train::TrainSummary c = train::run_training(resume_cpu, MPI_COMM_WORLD);
  ASSERT_EQ(c.steps.size(), 1u);
  EXPECT_NEAR(c.steps[0].loss, full.steps[3].loss, 2e-2 * full.steps[3].loss);
  fs::remove_all(dir);
}

}  // namespace
