// The memory model: strata's own CPU plan reproduced exactly, Korthikanti et al.'s activation
// formulas, bytes per parameter, in-flight micro-batches of the 1F1B schedule.
#include <gtest/gtest.h>

#include "plan_test_util.hpp"
#include "strata/model/transformer.hpp"
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
  struct Case { const char* model; int batch, seq; config::RecomputeKind rc; };
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
// 4h GELU MLP), t = 8:
//   no parallelism            s b h (34 + 5 a s / h)
//   tensor parallel           s b h (10 + 24/t + 5 a s / (h t))
//   tensor + sequence         s b h / t (34 + 5 a s / h)
//   tensor + selective        s b h (10 + 24/t)
//   tensor + sequence + sel.  s b h 34 / t
//   full recomputation        2 s b h (kept per layer)
TEST(PlanMemory, ActivationsPerLayerMatchKorthikantiTableTwo) {
  const config::ModelConfig m = test::gpt(96, 12288, 96, 51200, 2048);  // GPT-3 175B shape
  const Workload w = Workload::of(m, 2048);
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  const config::ClusterConfig c = gpu_without_reserve();
  auto per_layer = [&](int tp, bool sp, Recompute rc) {
    Layout l;
    l.tp = tp, l.pp = 1, l.dp = 1, l.micro_batch = 1, l.micro_batches = 1, l.sequence_parallel = sp;
    l.recompute = rc;
    return predict_memory(w, l, c).activation_per_layer;
  };
  const double sbh = s * b * h;
  EXPECT_DOUBLE_EQ(per_layer(1, false, Recompute::none), sbh * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(per_layer(8, false, Recompute::none), sbh * (10 + 24 / t + 5 * a * s / (h * t)));
  EXPECT_DOUBLE_EQ(per_layer(8, true, Recompute::none), sbh / t * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(per_layer(8, false, Recompute::selective), sbh * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(per_layer(8, true, Recompute::selective), sbh * 34 / t);
  EXPECT_DOUBLE_EQ(per_layer(1, false, Recompute::full), 2 * sbh);
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

// 1F1B keeps pp - stage micro-batches in flight (capped by the step's count); interleaving with
// v virtual stages raises the first stage's to p + (p-1)/v (Korthikanti sec. 4.2.3).
TEST(PlanMemory, InFlightMicroBatchesOfTheSchedule) {
  const Workload w = Workload::of(test::gpt(32, 4096, 32), 2048);
  const config::ClusterConfig c = gpu_without_reserve();
  Layout l;
  l.tp = 1, l.pp = 4, l.dp = 1, l.micro_batches = 8;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight, 4.0);
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 3).in_flight, 1.0);
  l.vpp = 2;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight, 5.5);
  l.vpp = 1, l.micro_batches = 2;
  EXPECT_DOUBLE_EQ(predict_stage_memory(w, l, c, 0).in_flight, 2.0);
}

// Parameters per rank: TP splits the layers' matrices, PP the layers; the embedding sits on the
// first stage and the output layer on the last; together the ranks of one replica hold the model.
TEST(PlanMemory, ParametersPerRankAddUpToTheModel) {
  const config::ModelConfig m = test::model("llama2_70b");
  const Workload w = Workload::of(m, 4096);
  const config::ClusterConfig c = gpu_without_reserve();
  Layout l;
  l.tp = 8, l.pp = 4, l.dp = 1, l.micro_batches = 4;
  double sum = 0;
  for (int stage = 0; stage < l.pp; ++stage) sum += predict_stage_memory(w, l, c, stage).params_on_rank * l.tp;
  // Norm weights are replicated across TP ranks: 8x(2 L + 1) C of them instead of once.
  const double replicated_norms = double(l.tp - 1) * (2 * 80 + 1) * 8192;
  EXPECT_NEAR(sum, double(w.counts.total) + replicated_norms, 1.0);
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
  EXPECT_DOUBLE_EQ(b.optimizer * 8, a.optimizer);
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
