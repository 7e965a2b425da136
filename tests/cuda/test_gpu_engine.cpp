// The engine over the CUDA backend on one GPU against the CPU stage (fp32) from the same
// initial weights and batch: loss, every parameter's gradient, memorisation of a fixed batch,
// recompute = full against none, ZeRO-1 against ZeRO-0; the decoder's logits against the
// training forward's on the GPU; and the limits the support statement names. (Tensor, sequence,
// data and pipeline parallelism against one GPU: tests/mpi/test_gpu_layouts.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../gpu_engine_checks.hpp"
#include "../unit/mpi_singleton.hpp"
#include "cuda_test_util.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/capabilities.hpp"
#include "strata/model/runtime_model.hpp"
#include "strata/model/transformer.hpp"
#include "strata/optim/optimizer.hpp"
#include "strata/parallel/engine.hpp"

using namespace strata;

namespace {

constexpr int kB = 2, kT = 32, kM = 2;  // two micro-batches of 2 x 32 tokens
constexpr std::uint64_t kSeed = 7;

struct Result {
  double loss = 0;  // mean over the step's target tokens
  std::vector<float> grads;
};

parallel::Engine::FillBatch filler(const config::ModelConfig& c) {
  return [c](int mb, std::int32_t* tokens, std::int32_t* targets) {
    test::fill_batch(c, kB, kT, mb, tokens, targets);
  };
}

Result cpu_step(const config::ModelConfig& c) {
  model::Transformer<float> m(c, kB, kT);
  m.init_parameters(kSeed);
  m.zero_grads();
  const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
  std::vector<std::int32_t> tok(kB * kT), tgt(kB * kT);
  model::LossSum sum;
  for (int mb = 0; mb < kM; ++mb) {
    test::fill_batch(c, kB, kT, mb, tok.data(), tgt.data());
    const model::LossSum l = m.forward_backward(tok.data(), tgt.data(), scale);
    sum.sum += l.sum;
    sum.count += l.count;
  }
  Result r;
  r.loss = sum.mean();
  r.grads.assign(m.grads().begin(), m.grads().begin() + m.table().numel());
  return r;
}

config::ParallelConfig parallel_config(int zero_stage = 0) {
  config::ParallelConfig p;
  p.micro_batch_size = kB;
  p.zero_stage = zero_stage;
  return p;
}

Result gpu_step(parallel::Engine& e, const config::ModelConfig& c) {
  const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
  const parallel::StepStats st = e.run(filler(c), scale);
  EXPECT_EQ(st.loss.count, test::count_targets(kB, kT, kM));
  EXPECT_GT(st.compute_s, 0.0);
  Result r;
  r.loss = st.loss.mean();
  e.download_gradients(r.grads);
  return r;
}

class GpuEngineTest : public test::CudaTest {
 protected:
  void SetUp() override {
    test::CudaTest::SetUp();
    if (IsSkipped()) return;
    grid_ = std::make_unique<comm::RankGrid>(MPI_COMM_WORLD, 1, 1, 1);
  }
  std::unique_ptr<parallel::Engine> engine(const config::ModelConfig& c, int zero_stage = 0) {
    auto e = parallel::make_engine(config::DeviceKind::cuda, c, parallel_config(zero_stage),
                                   config::OptimConfig{}, kT, kM, *grid_);
    e->init_parameters(kSeed);
    return e;
  }
  // (a) loss and (b) gradients of one step against the CPU model.
  void expect_matches_cpu(const config::ModelConfig& c) {
    const Result cpu = cpu_step(c);
    auto e = engine(c);
    // The fp32 master weights are exactly the CPU's initial values (the GPU pads the
    // vocabulary to 64 rows: compared tensor by tensor, by global index).
    const test::EngineParams w = test::engine_params(*e);
    model::Transformer<float> ref(c, kB, kT);
    ref.init_parameters(kSeed);
    const std::vector<float> ref_params(ref.params().begin(), ref.params().begin() + ref.table().numel());
    test::expect_same_values(w.table, w.values, ref.table(), ref_params);
    const Result gpu = gpu_step(*e, c);
    // Loss ~ ln(97) ~ 4.6 from bf16 logits: each logit carries a relative error of a few 2^-9
    // (bf16 inputs, fp32 accumulation) ~ 0.01 absolute at |logit| ~ 1, which moves the mean
    // loss by about that much; 2e-2 relative (~0.09) leaves a wide margin and still catches a
    // wrong mask, scale or softmax (errors of order 1).
    EXPECT_NEAR(gpu.loss, cpu.loss, 2e-2 * cpu.loss) << c.name;
    test::expect_gradients_close(w.table, gpu.grads, ref.table(), cpu.grads);
    EXPECT_NE(e->description().find("CUDA backend"), std::string::npos);
  }
  std::unique_ptr<comm::RankGrid> grid_;
};

TEST_F(GpuEngineTest, GptStyleLossAndGradientsMatchCpu) { expect_matches_cpu(test::gpu_gpt()); }

TEST_F(GpuEngineTest, LlamaStyleLossAndGradientsMatchCpu) { expect_matches_cpu(test::gpu_llama()); }

TEST_F(GpuEngineTest, LlamaStyleWithBiasesMatchesCpu) {
  config::ModelConfig c = test::gpu_llama();
  c.bias = true;  // gate and up biases included (SwiGLU)
  expect_matches_cpu(c);
}

TEST_F(GpuEngineTest, BidirectionalAttentionMatchesCpu) {
  config::ModelConfig c = test::gpu_gpt();
  c.attention = config::AttentionKind::bidirectional;
  expect_matches_cpu(c);
}

TEST_F(GpuEngineTest, MemorisesAFixedBatch) {
  // 20 AdamW steps on the same two micro-batches: a 2-layer model of width 128 memorises 128
  // tokens, so the loss must fall far below its initial ln(97) ~ 4.6 (the CPU model in fp32
  // reaches about the same; a broken backward or optimizer leaves it near 4.6).
  for (const config::ModelConfig& c : {test::gpu_gpt(), test::gpu_llama()}) {
    auto e = engine(c, 1);
    const float scale = float(1.0 / double(test::count_targets(kB, kT, kM)));
    double first = 0;
    for (int step = 0; step < 20; ++step) {
      const parallel::StepStats st = e->run(filler(c), scale);
      if (step == 0) first = st.loss.mean();
      const double norm = e->grad_norm();
      ASSERT_TRUE(std::isfinite(norm));
      e->optimizer_step(3e-3, optim::clip_factor(norm, 1.0));
    }
    const double last = e->evaluate(filler(c), kM).loss.mean();
    EXPECT_NEAR(first, std::log(97.0), 0.5) << c.name;
    EXPECT_LT(last, first / 4) << c.name << ": loss " << first << " -> " << last << " after 20 steps";
  }
}

TEST_F(GpuEngineTest, FullRecomputationGivesTheSameLossAndGradients) {
  for (config::ModelConfig c : {test::gpu_gpt(), test::gpu_llama()}) {
    auto none = engine(c);
    const Result a = gpu_step(*none, c);
    c.recompute = config::RecomputeKind::full;
    auto full = engine(c);
    const Result b = gpu_step(*full, c);
    EXPECT_LT(full->activation_bytes(), none->activation_bytes());
    // The recomputed forward repeats the same kernels on the same inputs; only the order of
    // the embedding backward's fp32 atomic additions may differ (fp32 rounding, ~1e-7).
    EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss) << c.name;
    EXPECT_TRUE(test::all_close(b.grads, a.grads, 1e-4, 1e-7)) << c.name;
  }
}

// zb_h1 on one GPU (F B W per micro-batch): the split backward over the CUDA backend (B without
// the weight GEMMs, W from the kept output gradients, stage_split_impl.hpp) against the fused one.
TEST_F(GpuEngineTest, ZeroBubbleSplitBackwardGivesTheSameLossAndGradients) {
  for (const config::ModelConfig& c : {test::gpu_gpt(), test::gpu_llama()}) {
    auto fused = engine(c);
    const Result a = gpu_step(*fused, c);
    config::ParallelConfig p = parallel_config();
    p.schedule = config::PipelineSchedule::zb_h1;
    auto split = parallel::make_engine(config::DeviceKind::cuda, c, p, config::OptimConfig{}, kT, kM, *grid_);
    split->init_parameters(kSeed);
    const Result b = gpu_step(*split, c);
    EXPECT_GT(split->activation_bytes(), fused->activation_bytes());  // the kept output gradients
    // The same kernels on the same inputs, the weight GEMMs later: only the embedding
    // backward's fp32 atomic additions may come in another order (~1e-7).
    EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss) << c.name;
    EXPECT_TRUE(test::all_close(b.grads, a.grads, 1e-4, 1e-7)) << c.name;
  }
}

TEST_F(GpuEngineTest, ZeroStageOneOnOneRankEqualsZeroStageZero) {
  const config::ModelConfig c = test::gpu_llama();
  auto z0 = engine(c, 0);
  auto z1 = engine(c, 1);
  for (int step = 0; step < 2; ++step) {
    const Result a = gpu_step(*z0, c), b = gpu_step(*z1, c);
    EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss);
    EXPECT_TRUE(test::all_close(b.grads, a.grads, 1e-4, 1e-7));
    EXPECT_NEAR(z0->grad_norm(), z1->grad_norm(), 1e-4 * z0->grad_norm());
    EXPECT_EQ(z0->optimizer_step(1e-3, 1.0), 0.0);
    EXPECT_EQ(z1->optimizer_step(1e-3, 1.0), 0.0);  // dp = 1: nothing to gather
  }
  const test::EngineParams p0 = test::engine_params(*z0), p1 = test::engine_params(*z1);
  EXPECT_TRUE(test::all_close(p1.values, p0.values, 1e-5, 1e-6));
  EXPECT_EQ(z0->optimizer_bytes(), z1->optimizer_bytes());
}

TEST_F(GpuEngineTest, GradientNormMatchesTheDownloadedGradients) {
  const config::ModelConfig c = test::gpu_gpt();
  auto e = engine(c);
  const Result r = gpu_step(*e, c);
  double sq = 0;
  for (float x : r.grads) sq += double(x) * x;
  EXPECT_NEAR(e->grad_norm(), std::sqrt(sq), 1e-4 * std::sqrt(sq));
}

TEST_F(GpuEngineTest, EngineAllocatesItsDryRunPlan) {
  // The memory the engine holds is the plan a CPU-only build prints for the job (--dry-run).
  const config::ModelConfig c = test::gpu_llama();
  auto e = engine(c, 1);
  const parallel::EnginePlan dry =
      parallel::plan_engine(c, parallel_config(1), config::OptimConfig{}, kT, kM, grid_->shape(),
                            grid_->coord(), model::cuda_backend_spec());
  EXPECT_EQ(e->parameter_bytes(), dry.parameter_bytes());
  EXPECT_EQ(e->activation_bytes(), dry.activation_bytes());
  EXPECT_EQ(e->plan().optimizer_bytes(), dry.optimizer_bytes());
}

// The decoder (KV cache) on the GPU computes the training forward's function: its logits of a
// whole sequence against the evaluation stage's loss on the same tokens, and greedy decoding
// token by token against the prefill's rows.
TEST_F(GpuEngineTest, DecoderAgreesWithTheTrainingForward) {
  for (config::ModelConfig c : {test::gpu_gpt(), test::gpu_llama()}) {
    c.bias = true;
    const model::ParameterTable table = model::make_parameter_table(c);
    std::vector<float> host(std::size_t(table.numel()));
    model::init_parameter_values(table, kSeed, host.data());
    auto dec = model::make_decoder_model(config::DeviceKind::cuda, c, kT, *grid_);
    auto fwd = model::make_forward_model(config::DeviceKind::cuda, c, 1, kT, *grid_);
    // Both TP-1 tables pad the vocabulary to 64 rows: upload the padded layout.
    std::vector<float> padded(std::size_t(dec->table().numel()), 0.0f);
    for (const model::ParamInfo& p : dec->table().entries()) {
      const model::ParamInfo& r = table.get(p.name);
      const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
      for (std::int64_t i = 0; i < real; ++i)
        padded[std::size_t(p.offset + i)] = host[std::size_t(r.offset + i)];
    }
    dec->upload_parameters(padded.data());
    fwd->upload_parameters(padded.data());
    std::vector<std::int32_t> tok(kT), tgt(kT);
    test::fill_batch(c, 1, kT, 0, tok.data(), tgt.data());
    for (int i = 0; i + 1 < kT; ++i) tgt[std::size_t(i)] = tok[std::size_t(i) + 1];
    tgt[kT - 1] = -1;
    const model::LossSum want = fwd->forward(tok.data(), tgt.data());
    const float* rows = dec->forward(tok, true);
    double sum = 0;
    const std::size_t V = std::size_t(c.vocab_size);
    for (int i = 0; i + 1 < kT; ++i) {
      double mx = -1e30, z = 0;
      for (std::size_t v = 0; v < V; ++v) mx = std::max(mx, double(rows[std::size_t(i) * V + v]));
      for (std::size_t v = 0; v < V; ++v) z += std::exp(double(rows[std::size_t(i) * V + v]) - mx);
      sum += mx + std::log(z) - double(rows[std::size_t(i) * V + std::size_t(tgt[std::size_t(i)])]);
    }
    // Same kernels but for the attention (flash vs. the cache kernel) and bf16 logits read
    // back: the mean loss within 1e-2 relative.
    EXPECT_NEAR(sum / (kT - 1), want.mean(), 1e-2 * want.mean()) << c.name;
  }
}

// ---- limits: from the support statement (config/capabilities.hpp), on any machine.

TEST(GpuEngineLimits, HeadSizesOtherThan64Or128AreRefusedByName) {
  const std::vector<std::string> no =
      config::unsupported(config::DeviceKind::cuda, test::gpu_gpt(128, 4), parallel_config(), kT);
  ASSERT_EQ(no.size(), 1u);
  EXPECT_NE(no[0].find("head size 32"), std::string::npos) << no[0];
}

TEST(GpuEngineLimits, PipelineAndVirtualStagesAreSupported) {
  config::ParallelConfig p = parallel_config();
  p.pp = 2;
  p.virtual_stages = 2;
  p.schedule = config::PipelineSchedule::interleaved_1f1b;
  EXPECT_TRUE(config::unsupported(config::DeviceKind::cuda, test::gpu_gpt(), p, kT).empty());
}

TEST(GpuEngineLimits, ZeroBubbleScheduleIsSupported) {
  config::ParallelConfig p = parallel_config();
  p.pp = 2;
  p.schedule = config::PipelineSchedule::zb_h1;
  EXPECT_TRUE(config::unsupported(config::DeviceKind::cuda, test::gpu_gpt(), p, kT).empty());
}

}  // namespace
