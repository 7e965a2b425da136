// The CUDA engine's layouts on two (and four) GPUs against one GPU (run under mpiexec -n 2 and -n 4; label
// cuda): tensor parallelism (tp 2, with and without sequence parallelism), data parallelism (dp 2: bucketed
// reduction with ZeRO-0/1, fp32 or bf16; ZeRO-2/3 fp32, also under zb_h1's split backward), pipeline
// parallelism (pp 2: gpipe, 1f1b, interleaved 1f1b with 2 virtual stages, zero-bubble zb_h1) and context
// parallelism give the loss and the gradients of the one-GPU engine within bf16 tolerances, and (dp 2) the
// same update. These are the layouts the CPU suite proves equal to one rank (tests/mpi/test_layouts.cpp), run
// by the same engine code over the CUDA backend. The reference runs on every rank from a one-rank grid over
// MPI_COMM_SELF. Each case is its own test: one that fails is never hidden behind another's skip. Context
// parallelism: the ring (the flash kernel's block form) with cp 2 on two GPUs, and cp 2 with tp 2 (with and
// without sequence parallelism) or dp 2 on four (suite GpuLayoutsFour); the Ulysses mode (NCCL all-to-all,
// flash attention over whole sequences of half the heads) with cp 2 on two. Skips where fewer GPUs are
// visible.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <memory>
#include <vector>

#include "../cuda/cuda_test_util.hpp"
#include "../gpu_engine_checks.hpp"
#include "mpi_test_util.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/kernels/cuda/common.hpp"
#include "strata/parallel/engine.hpp"

using namespace strata;

namespace {

constexpr int kB = 2, kT = 32, kM = 2;
constexpr std::uint64_t kSeed = 3;

// Every rank must agree on skipping (the suites' collectives would hang otherwise): `need`
// ranks, each with at least `need` visible GPUs (one per rank on one node).
bool enough_gpus(int need, std::string* why) {
  int count = 0;
  std::string reason;
  if (kernels::cuda::cuda_device_available(&reason) && cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  int min_count = count;
  MPI_Allreduce(&count, &min_count, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  *why = reason.empty()
             ? std::to_string(min_count) + " visible GPU(s) on some rank and " +
                   std::to_string(test::world_size()) + " ranks, need " + std::to_string(need) + " of each"
             : reason;
  return min_count >= need && test::world_size() == need;
}

config::ParallelConfig parallel_config(int zero_stage, config::ReduceDType reduce) {
  config::ParallelConfig p;
  p.micro_batch_size = kB;
  p.zero_stage = zero_stage;
  p.grad_reduce_dtype = reduce;
  p.bucket_mb = 0.25;  // several buckets even for these small models: exercises the overlap
  return p;
}

struct Step {
  model::LossSum loss;
  std::vector<float> grads;
};

// One step over micro-batches [first, first + m) of the global sequence.
Step run_step(parallel::Engine& e, const config::ModelConfig& c, int first, float scale) {
  const parallel::StepStats st =
      e.run([&](int mb, std::int32_t* t, std::int32_t* g) { test::fill_batch(c, kB, kT, first + mb, t, g); },
            scale);
  Step s;
  s.loss = st.loss;
  e.download_gradients(s.grads);
  return s;
}

class GpuLayouts : public ::testing::Test {
 protected:
  virtual int ranks() const { return 2; }
  void SetUp() override {
    std::string why;
    if (!enough_gpus(ranks(), &why)) GTEST_SKIP() << why;
    self_grid_ = std::make_unique<comm::RankGrid>(MPI_COMM_SELF, 1, 1, 1);
  }
  std::unique_ptr<parallel::Engine> reference(const config::ModelConfig& c, int microbatches) {
    auto e = parallel::make_engine(config::DeviceKind::cuda, c, parallel_config(0, config::ReduceDType::fp32),
                                   config::OptimConfig{}, kT, microbatches, *self_grid_);
    e->init_parameters(kSeed);
    return e;
  }
  void tensor_parallel(bool sp) {
    // tp 2 needs heads and KV heads divisible by 2: width 256, 4 heads (2 KV heads for LLaMA).
    for (const config::ModelConfig& c : {test::gpu_gpt(256, 4), test::gpu_llama(256, 4, 2)}) {
      const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
      auto ref = reference(c, kM);
      const Step want = run_step(*ref, c, 0, scale);
      const double want_norm = ref->grad_norm();
      const test::EngineParams ref_table = test::engine_params(*ref);
      comm::RankGrid grid(MPI_COMM_WORLD, 2, 1, 1);
      config::ParallelConfig par = parallel_config(0, config::ReduceDType::fp32);
      par.tp = 2;
      par.sequence_parallel = sp;
      auto e = parallel::make_engine(config::DeviceKind::cuda, c, par, config::OptimConfig{}, kT, kM, grid);
      e->init_parameters(kSeed);
      const Step got = run_step(*e, c, 0, scale);
      // Both in bf16; TP adds the bf16 rounding of the partial sums before each all-reduce
      // (relative 2^-9 per value), which moves the mean loss by far less than 1e-2 relative.
      EXPECT_EQ(got.loss.count, want.loss.count);
      EXPECT_NEAR(got.loss.mean(), want.loss.mean(), 1e-2 * want.loss.mean()) << c.name;
      test::expect_gradients_close(test::engine_params(*e).table, got.grads, ref_table.table, want.grads);
      // The norm counts replicated tensors once (TP rank 0).
      EXPECT_NEAR(e->grad_norm(), want_norm, 5e-2 * want_norm) << c.name;
    }
  }
  void pipeline(config::PipelineSchedule schedule, int virtual_stages) {
    // pp 2 over 4 layers (interleaved: 2 chunks of one layer per rank); GPT-style ties the
    // embedding across the first and the last stage (kept in sync over the embedding group).
    for (config::ModelConfig c : {test::gpu_gpt(), test::gpu_llama()}) {
      c.num_layers = 4;
      const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
      auto ref = reference(c, kM);
      const Step want = run_step(*ref, c, 0, scale);
      const double want_norm = ref->grad_norm();
      const test::EngineParams ref_table = test::engine_params(*ref);
      comm::RankGrid grid(MPI_COMM_WORLD, 1, 2, 1);
      config::ParallelConfig par = parallel_config(0, config::ReduceDType::fp32);
      par.pp = 2;
      par.schedule = schedule;
      par.virtual_stages = virtual_stages;
      auto e = parallel::make_engine(config::DeviceKind::cuda, c, par, config::OptimConfig{}, kT, kM, grid);
      e->init_parameters(kSeed);
      const Step got = run_step(*e, c, 0, scale);
      // The loss lives on the last stage.
      double sums[2] = {got.loss.sum, double(got.loss.count)};
      MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      EXPECT_EQ(std::int64_t(sums[1]), want.loss.count) << c.name;
      EXPECT_NEAR(sums[0] / sums[1], want.loss.mean(), 1e-2 * want.loss.mean()) << c.name;
      // Each rank's chunks against the same tensors of the one-GPU model.
      test::expect_gradients_close(test::engine_params(*e).table, got.grads, ref_table.table, want.grads);
      EXPECT_NEAR(e->grad_norm(), want_norm, 5e-2 * want_norm) << c.name;
      // One optimizer step on both, then the next forward's loss: the stages' updated weights
      // (and the tied embedding's two copies) agree with the one-GPU update.
      ref->optimizer_step(1e-3, 1.0);
      e->optimizer_step(1e-3, 1.0);
      const auto fill = [&](int mb, std::int32_t* t, std::int32_t* g) {
        test::fill_batch(c, kB, kT, mb, t, g);
      };
      const model::LossSum after = e->evaluate(fill, kM).loss;
      double a[2] = {after.sum, double(after.count)};
      MPI_Allreduce(MPI_IN_PLACE, a, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
      const model::LossSum ref_after = ref->evaluate(fill, kM).loss;
      EXPECT_NEAR(a[0] / a[1], ref_after.mean(), 1e-2 * ref_after.mean()) << c.name;
    }
  }
  // Context parallelism (ring attention over cp 2: each rank holds two mirrored chunks of
  // every sequence, the block flash-attention kernel merges the K/V blocks as they travel),
  // alone (2 GPUs) or with tp 2 (sequence parallel or not) or dp 2 (ZeRO-1) on 4 GPUs. cp ranks
  // read the same micro-batches; the engine sums the loss and the gradients over cp.
  void context_parallel(int tp, int dp, bool sp) {
    for (const config::ModelConfig& c : {test::gpu_gpt(256, 4), test::gpu_llama(256, 4, 2)}) {
      // The global batch is dp x kM micro-batches; DP rank r runs [r kM, (r+1) kM).
      const float scale = float(1.0 / double(test::count_targets(kB, kT, dp * kM)));
      auto ref = reference(c, dp * kM);
      const Step want = run_step(*ref, c, 0, scale);
      const double want_norm = ref->grad_norm();
      const test::EngineParams ref_table = test::engine_params(*ref);
      comm::RankGrid grid(MPI_COMM_WORLD, tp, 1, dp, 600.0, 2);
      config::ParallelConfig par = parallel_config(dp > 1 ? 1 : 0, config::ReduceDType::fp32);
      par.tp = tp;
      par.dp = dp;
      par.cp = 2;
      par.sequence_parallel = sp;
      auto e = parallel::make_engine(config::DeviceKind::cuda, c, par, config::OptimConfig{}, kT, kM, grid);
      e->init_parameters(kSeed);
      const int dp_rank = grid.coord().dp_rank;
      const Step got = run_step(*e, c, dp_rank * kM, scale);
      // The loss is summed over cp by the engine (every tp rank holds it); over dp here.
      double sums[2] = {got.loss.sum, double(got.loss.count)};
      grid.dp_group().all_reduce(sums, 2);
      EXPECT_EQ(std::int64_t(sums[1]), want.loss.count) << c.name;
      EXPECT_NEAR(sums[0] / sums[1], want.loss.mean(), 1e-2 * want.loss.mean()) << c.name;
      // bf16 activations; the ring's dQ/dK/dV sums are fp32 and rounded to bf16 once, its
      // running output is re-rounded to bf16 at each of the (up to 4) merges of a row.
      test::expect_gradients_close(test::engine_params(*e).table, got.grads, ref_table.table, want.grads);
      EXPECT_NEAR(e->grad_norm(), want_norm, 5e-2 * want_norm) << c.name;
      // One step on both, then the next forward (the ring in evaluation) of the same batch.
      ref->optimizer_step(1e-3, 1.0);
      e->optimizer_step(1e-3, 1.0);
      const model::LossSum after =
          e->evaluate([&](int mb, std::int32_t* t,
                          std::int32_t* g) { test::fill_batch(c, kB, kT, dp_rank * kM + mb, t, g); },
                      kM)
              .loss;
      double a[2] = {after.sum, double(after.count)};
      grid.dp_group().all_reduce(a, 2);
      const model::LossSum ref_after =
          ref->evaluate(
                 [&](int mb, std::int32_t* t, std::int32_t* g) { test::fill_batch(c, kB, kT, mb, t, g); },
                 dp * kM)
              .loss;
      EXPECT_NEAR(a[0] / a[1], ref_after.mean(), 1e-2 * ref_after.mean()) << c.name;
    }
  }
  // cp 2, Ulysses: each GPU holds two of the four chunks of every sequence and computes the
  // attention of half the heads (GPT: 4 heads; LLaMA: 4 heads over 2 KV heads, one per GPU);
  // the loss and the gradients are summed over cp by the engine, so every rank holds them whole.
  void ulysses() {
    for (const config::ModelConfig& c : {test::gpu_gpt(256, 4), test::gpu_llama(256, 4, 2)}) {
      const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
      auto ref = reference(c, kM);
      const Step want = run_step(*ref, c, 0, scale);
      const double want_norm = ref->grad_norm();
      const test::EngineParams ref_table = test::engine_params(*ref);
      comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 1, 600.0, 2);
      config::ParallelConfig par = parallel_config(0, config::ReduceDType::fp32);
      par.cp = 2;
      par.cp_mode = config::CpMode::ulysses;
      auto e = parallel::make_engine(config::DeviceKind::cuda, c, par, config::OptimConfig{}, kT, kM, grid);
      e->init_parameters(kSeed);
      const Step got = run_step(*e, c, 0, scale);
      // bf16 on both; the all-to-alls move values unchanged, the sums over cp add the
      // rounding of two partial gradients.
      EXPECT_EQ(got.loss.count, want.loss.count) << c.name;
      EXPECT_NEAR(got.loss.mean(), want.loss.mean(), 1e-2 * want.loss.mean()) << c.name;
      test::expect_gradients_close(test::engine_params(*e).table, got.grads, ref_table.table, want.grads);
      EXPECT_NEAR(e->grad_norm(), want_norm, 5e-2 * want_norm) << c.name;
    }
  }
  std::unique_ptr<comm::RankGrid> self_grid_;
};

// The layouts of four GPUs (run under mpiexec -n 4: ctest mpi.gpu_layouts.np4).
class GpuLayoutsFour : public GpuLayouts {
 protected:
  int ranks() const override { return 4; }
};

TEST_F(GpuLayouts, TensorParallelTwoGpusMatchOne) { tensor_parallel(false); }
TEST_F(GpuLayouts, SequenceParallelTwoGpusMatchOne) { tensor_parallel(true); }
TEST_F(GpuLayouts, PipelineGpipeTwoGpusMatchOne) { pipeline(config::PipelineSchedule::gpipe, 1); }
TEST_F(GpuLayouts, Pipeline1F1BTwoGpusMatchOne) { pipeline(config::PipelineSchedule::one_f_one_b, 1); }
TEST_F(GpuLayouts, PipelineInterleavedTwoGpusMatchOne) {
  pipeline(config::PipelineSchedule::interleaved_1f1b, 2);
}
TEST_F(GpuLayouts, PipelineZeroBubbleTwoGpusMatchOne) { pipeline(config::PipelineSchedule::zb_h1, 1); }

TEST_F(GpuLayouts, ContextParallelTwoGpusMatchOne) { context_parallel(1, 1, false); }
TEST_F(GpuLayouts, UlyssesContextParallelTwoGpusMatchOne) { ulysses(); }
TEST_F(GpuLayoutsFour, ContextParallelWithTensorParallelFourGpusMatchOne) { context_parallel(2, 1, false); }
TEST_F(GpuLayoutsFour, ContextParallelWithSequenceParallelFourGpusMatchOne) { context_parallel(2, 1, true); }
TEST_F(GpuLayoutsFour, ContextParallelWithDataParallelFourGpusMatchOne) { context_parallel(1, 2, false); }

TEST_F(GpuLayouts, DataParallelTwoGpusMatchOne) {
  const config::ModelConfig c = test::gpu_llama();
  const int dp_rank = test::world_rank();
  struct Case {
    int zero_stage;
    config::ReduceDType reduce;
    const char* name;
    bool zb = false;  // zb_h1 on pp 1: B holds the norm and bias gradients until W's unit
  };
  for (const Case& k :
       {Case{1, config::ReduceDType::fp32, "zero1 fp32"}, Case{1, config::ReduceDType::bf16, "zero1 bf16"},
        Case{0, config::ReduceDType::bf16, "zero0 bf16"}, Case{2, config::ReduceDType::fp32, "zero2 fp32"},
        Case{3, config::ReduceDType::fp32, "zero3 fp32"},
        Case{2, config::ReduceDType::fp32, "zero2 zb_h1", true},
        Case{3, config::ReduceDType::fp32, "zero3 zb_h1", true}}) {
    // The global batch is 2 x kM micro-batches; DP rank r runs [r kM, (r+1) kM).
    const float scale = float(1.0 / double(test::count_targets(kB, kT, 2 * kM)));
    auto ref = reference(c, 2 * kM);
    const Step want = run_step(*ref, c, 0, scale);
    const double want_norm = ref->grad_norm();
    const test::EngineParams ref_table = test::engine_params(*ref);
    comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 2);
    config::ParallelConfig par = parallel_config(k.zero_stage, k.reduce);
    if (k.zb) par.schedule = config::PipelineSchedule::zb_h1;
    auto e = parallel::make_engine(config::DeviceKind::cuda, c, par, config::OptimConfig{}, kT, kM, grid);
    e->init_parameters(kSeed);
    const Step got = run_step(*e, c, dp_rank * kM, scale);  // gradients: the DP-reduced sum
    double sums[2] = {got.loss.sum, double(got.loss.count)};
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    EXPECT_EQ(std::int64_t(sums[1]), want.loss.count) << k.name;
    EXPECT_NEAR(sums[0] / sums[1], want.loss.mean(), 1e-2 * want.loss.mean()) << k.name;
    // bf16 reduction: each gradient element rounded to bf16 before and after the sum
    // (relative 2^-8 at most): well inside the per-tensor cosine / norm tolerances.
    test::expect_gradients_close(test::engine_params(*e).table, got.grads, ref_table.table, want.grads);
    const double norm = e->grad_norm();
    EXPECT_NEAR(norm, want_norm, 5e-2 * want_norm) << k.name;
    // One AdamW step on both (ZeRO-1: each rank its pieces, then the bf16 all-gather): the
    // first Adam step moves each weight by about lr * sign(g), so weights agree to a few lr
    // wherever the sign agrees; the loss of the next forward checks the gathered bf16 copy.
    const double lr = 1e-3;
    ref->optimizer_step(lr, 1.0);
    e->optimizer_step(lr, 1.0);
    EXPECT_TRUE(
        test::all_close(test::engine_params(*e).values, test::engine_params(*ref).values, 0.0, 2.5 * lr))
        << k.name;
    auto fill = [&](int mb, std::int32_t* t, std::int32_t* g) {
      test::fill_batch(c, kB, kT, dp_rank * kM + mb, t, g);
    };
    const model::LossSum after = e->evaluate(fill, kM).loss;
    double a[2] = {after.sum, double(after.count)};
    MPI_Allreduce(MPI_IN_PLACE, a, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    const model::LossSum ref_after =
        ref->evaluate(
               [&](int mb, std::int32_t* t, std::int32_t* g) { test::fill_batch(c, kB, kT, mb, t, g); },
               2 * kM)
            .loss;
    EXPECT_NEAR(a[0] / a[1], ref_after.mean(), 1e-2 * ref_after.mean()) << k.name;
    EXPECT_LT(ref_after.mean(), want.loss.mean()) << "one step on the same batch lowers the loss";
  }
}

}  // namespace
