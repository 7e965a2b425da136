// The memory model: strata's own engine plan (CPU and GPU) reproduced exactly, Korthikanti et
// al.'s activation formulas (the Megatron-LM validation's), bytes per parameter, in-flight
// micro-batches of the schedules.
#include <gtest/gtest.h>

#include "plan_test_util.hpp"
#include "strata/model/transformer.hpp"
#include "strata/parallel/engine.hpp"
#include "strata/parallel/schedule.hpp"
#include "strata/plan/memory.hpp"

namespace strata::plan {
namespace {

config::ClusterConfig gpu_without_reserve() {
  config::ClusterConfig c = test::cluster("a100_sxm_80gb");
  c.reserved_gib = 0;
  return c;
}

// The planner's fp32 (CPU) prediction is the planned bytes of a real Transformer<float>: the
// activation plan and the parameter + gradient plan, to the byte (64-byte alignment included).
TEST(PlanMemory, CpuPlanEqualsTransformerPlannedBytes) {
  struct Case {
    const char* model;
    int batch, seq;
    config::RecomputeKind rc;
  };
  const Case cases[] = {{"tiny_gpt", 4, 32, config::RecomputeKind::none},
                        {"tiny_llama", 3, 17, config::RecomputeKind::none},
                        {"tiny_gpt", 2, 32, config::RecomputeKind::full},
                        {"llama_tiny", 2, 64, config::RecomputeKind::none},
                        {"llama_tiny", 2, 64, config::RecomputeKind::full}};
  for (const Case& c : cases) {
    config::ModelConfig m = test::model(c.model);
    m.recompute = c.rc;
    const model::Transformer<float> t(m, c.batch, c.seq);
    const StrataCpuPlan p = strata_cpu_plan(m, c.batch, c.seq);
    EXPECT_EQ(p.activations, double(t.activation_memory().total_bytes())) << c.model;
    EXPECT_EQ(p.parameters_and_grads, double(t.parameter_memory().total_bytes())) << c.model;

    // Through the layout interface: tp = pp = dp = 1, fp32.
    Layout l;
    l.precision = config::Precision::fp32;
    l.micro_batch = c.batch;
    l.zero = 0;
    l.recompute = c.rc == config::RecomputeKind::full ? Recompute::full : Recompute::none;
    config::ClusterConfig cpu = test::cluster("local");
    cpu.reserved_gib = 0;
    const MemoryBreakdown mb = predict_memory(Workload::of(m, c.seq), l, cpu);
    const double optimizer = 2.0 * ((double(t.table().numel()) * 4 + 63) / 64 * 64);
    EXPECT_EQ(mb.weights + mb.gradients, double(t.parameter_memory().total_bytes()));
    EXPECT_NEAR(mb.optimizer, optimizer, 128.0);
    EXPECT_EQ(mb.activations, double(t.activation_memory().total_bytes()));
    EXPECT_EQ(mb.workspace, p.batch);  // the trainer's inputs and targets
  }
}

// Korthikanti et al. 2022, table 2 (bytes per layer, s b h units), for a GPT layer (a heads,
// 4h GELU MLP), t = 8 — the formula the Megatron-LM validation uses for Megatron's own runs
// (strata's engine keeps less: flash attention, no dropout; its plan is tested below):
//   no parallelism            s b h (34 + 5 a s / h)
//   tensor parallel           s b h (10 + 24/t + 5 a s / (h t))
//   tensor + sequence         s b h / t (34 + 5 a s / h)
//   tensor + selective        s b h (10 + 24/t)
//   tensor + sequence + sel.  s b h 34 / t
TEST(PlanMemory, KorthikantiActivationsPerLayerMatchTableTwo) {
  const config::ModelConfig m = test::gpt(96, 12288, 96, 51200, 2048);  // GPT-3 175B shape
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  const double sbh = s * b * h;
  EXPECT_DOUBLE_EQ(korthikanti_layer_activation_bytes(m, s, b, 1, false, false), sbh * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(korthikanti_layer_activation_bytes(m, s, b, 8, false, false),
                   sbh * (10 + 24 / t + 5 * a * s / (h * t)));
  EXPECT_DOUBLE_EQ(korthikanti_layer_activation_bytes(m, s, b, 8, true, false),
                   sbh / t * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(korthikanti_layer_activation_bytes(m, s, b, 8, false, true), sbh * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(korthikanti_layer_activation_bytes(m, s, b, 8, true, true), sbh * 34 / t);
}

// The GPU (bf16) prediction is the CUDA engine's own plan (parallel::plan_engine with the CUDA
// backend's spec, what `strata train --dry-run` prints and the engine allocates: the CUDA test
// GpuEngineTest.EngineAllocatesItsDryRunPlan closes the chain on a GPU), per stage and layout, to
// the byte: parameters (bf16 copy) and fp32 gradients, master weights and moments, activations,
// ZeRO-1's shard and the bf16 reduction staging, the pipeline buffers.
TEST(PlanMemory, GpuPredictionEqualsTheEnginesDryRunPlan) {
  const config::ModelConfig m = test::model("llama2_7b");
  const config::ClusterConfig c = gpu_without_reserve();
  struct Case {
    int tp, pp, dp, v, mb, m;
    bool sp;
    int zero;
    Recompute rc;
  };
  const Case cases[] = {{1, 1, 8, 1, 1, 4, false, 1, Recompute::none},
                        {4, 2, 2, 1, 1, 8, true, 1, Recompute::none},
                        {2, 4, 1, 2, 1, 8, true, 0, Recompute::full},
                        {8, 1, 4, 1, 2, 2, true, 1, Recompute::full}};
  for (const Case& k : cases) {
    Layout l;
    l.tp = k.tp, l.pp = k.pp, l.dp = k.dp, l.vpp = k.v, l.micro_batch = k.mb, l.micro_batches = k.m;
    l.sequence_parallel = k.sp, l.zero = k.zero, l.recompute = k.rc;
    config::ParallelConfig p;
    p.tp = k.tp, p.pp = k.pp, p.dp = k.dp, p.virtual_stages = k.v, p.micro_batch_size = k.mb;
    p.sequence_parallel = k.sp, p.zero_stage = k.zero;
    p.schedule = k.v > 1 ? config::PipelineSchedule::interleaved_1f1b : config::PipelineSchedule::one_f_one_b;
    config::ModelConfig mm = m;
    mm.recompute = k.rc == Recompute::full ? config::RecomputeKind::full : config::RecomputeKind::none;
    for (int stage = 0; stage < k.pp; ++stage) {
      SCOPED_TRACE(to_string(l) + " stage " + std::to_string(stage));
      const MemoryBreakdown mb = predict_stage_memory(Workload::of(m, 4096), l, c, stage);
      const parallel::EnginePlan e =
          parallel::plan_engine(mm, p, config::OptimConfig{}, 4096, k.m, {k.tp, k.pp, k.dp}, {0, 0, stage},
                                model::cuda_backend_spec());
      EXPECT_EQ(mb.weights + mb.gradients, double(e.parameter_bytes()));
      EXPECT_EQ(mb.optimizer + mb.comm_buffers + mb.activations,
                double(e.optimizer_bytes() + e.activation_bytes()));
      EXPECT_EQ(mb.total(), double(e.device_bytes()));  // no reserve: the engine's plan is everything
    }
  }
}

// Megatron-LM docs/distrib_optimizer.md: bf16 parameters with fp32 gradients take 18 bytes per
// parameter replicated, 6 + 12/d with the distributed optimizer (ZeRO-1).
TEST(PlanMemory, BytesPerParameterFollowMegatronsTable) {
  const BytesPerParam replicated = bytes_per_param(config::Precision::bf16, 0, 8);
  EXPECT_DOUBLE_EQ(replicated.weights + replicated.gradients + replicated.optimizer, 18.0);
  const BytesPerParam sharded = bytes_per_param(config::Precision::bf16, 1, 8);
  EXPECT_DOUBLE_EQ(sharded.weights + sharded.gradients + sharded.optimizer, 6.0 + 12.0 / 8);
  const BytesPerParam fp32 = bytes_per_param(config::Precision::fp32, 0, 1);
  EXPECT_DOUBLE_EQ(fp32.weights + fp32.gradients + fp32.optimizer, 16.0);  // strata on CPU
}

// The activation slots of strata's pipeline executor: 1F1B keeps pp - stage micro-batches in
// flight (capped by the step's count), GPipe all of them; interleaving keeps per chunk what the
// schedule's order has in flight (parallel::max_in_flight), reported per chunk on average.
TEST(PlanMemory, InFlightMicroBatchesOfTheSchedule) {
  const Workload w = Workload::of(test::gpt(32, 4096, 32), 2048);
  const config::ClusterConfig c = gpu_without_reserve();
  Layout l;
  l.tp = 1, l.pp = 4, l.dp = 1, l.micro_batches = 8;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight, 4.0);
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 3).in_flight, 1.0);
  l.vpp = 2;
  const auto sched = parallel::build_schedule(config::PipelineSchedule::interleaved_1f1b, 4, 0, 8, 2);
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight,
                   (parallel::max_in_flight(sched, 0) + parallel::max_in_flight(sched, 1)) / 2.0);
  l.vpp = 1, l.micro_batches = 2;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight, 2.0);
  l.gpipe = true, l.micro_batches = 8;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 3).in_flight, 8.0);
}

// Parameters per rank: TP splits the layers' matrices, PP the layers; the embedding sits on the
// first stage and the output layer on the last; together the ranks of one replica hold the
// model, plus what the engine pads: each TP rank's vocabulary slice a multiple of 64 rows on GPUs.
TEST(PlanMemory, ParametersPerRankAddUpToTheModel) {
  const config::ModelConfig m = test::model("llama2_70b");
  const Workload w = Workload::of(m, 4096);
  const config::ClusterConfig c = gpu_without_reserve();
  Layout l;
  l.tp = 8, l.pp = 4, l.dp = 1, l.micro_batches = 4;
  double sum = 0;
  for (int stage = 0; stage < l.pp; ++stage)
    sum += predict_stage_memory(w, l, c, stage).params_on_rank * l.tp;
  // Norm weights are replicated across TP ranks: 8x(2 L + 1) C of them instead of once.
  const double replicated_norms = double(l.tp - 1) * (2 * 80 + 1) * 8192;
  // The untied embedding and output layer, 32000 rows padded to 8 x 4032 = 32256.
  const double padding = 2.0 * (32256 - 32000) * 8192;
  EXPECT_NEAR(sum, double(w.counts.total) + replicated_norms + padding, 1.0);
}

// ZeRO-1 divides only the optimizer state; sequence parallelism only the activations.
TEST(PlanMemory, ZeroAndSequenceParallelismShrinkTheirOwnTerms) {
  const Workload w = Workload::of(test::model("llama2_13b"), 4096);
  const config::ClusterConfig c = test::cluster("h100_sxm_80gb");
  Layout base;
  base.tp = 4, base.pp = 2, base.dp = 8, base.micro_batches = 16, base.zero = 0;
  Layout zero = base;
  zero.zero = 1;
  const MemoryBreakdown a = predict_memory(w, base, c), b = predict_memory(w, zero, c);
  // 1/8 of the state, up to the 64-byte alignment of each buffer and the AdamW segment table
  // (one record per owned piece and weight-decay group: more pieces under ZeRO-1).
  EXPECT_NEAR(b.optimizer * 8, a.optimizer, 64.0 * 1024);
  EXPECT_DOUBLE_EQ(b.weights, a.weights);
  EXPECT_DOUBLE_EQ(b.activations, a.activations);
  Layout sp = base;
  sp.sequence_parallel = true;
  const MemoryBreakdown d = predict_memory(w, sp, c);
  EXPECT_LT(d.activations, a.activations);
  EXPECT_DOUBLE_EQ(d.weights, a.weights);
}

}  // namespace
}  // namespace strata::plan
