// The time model: ring collective costs, the pipeline bubble, overlap of data-parallel traffic,
// and the throughput figures derived from a step time.
#include <gtest/gtest.h>

#include "plan_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/search.hpp"
#include "strata/plan/step_time.hpp"

namespace strata::plan {
namespace {

// Ring reduce-scatter over n ranks: (n-1) steps of alpha plus (n-1)/n of the data over the link.
TEST(PlanStepTime, RingCollectivesFollowTheAlphaBetaModel) {
  // 1 GB over 4 ranks at 100 GB/s with 10 us latency: 3 x 10 us + 0.75 x 10 ms.
  EXPECT_DOUBLE_EQ(ring_reduce_scatter_s(1e9, 4, 100, 10), 3 * 10e-6 + 0.75 * 1e9 / 100e9);
  EXPECT_DOUBLE_EQ(ring_all_reduce_s(1e9, 4, 100, 10), 2 * ring_reduce_scatter_s(1e9, 4, 100, 10));
  EXPECT_EQ(ring_all_reduce_s(1e9, 1, 100, 10), 0.0);
}

config::ClusterConfig ideal_links() {
  config::ClusterConfig c = test::cluster("a100_sxm_80gb");
  c.small_gemm_width = 0;
  c.small_gemm_width_range.clear();
  return c;
}

// With no tensor parallelism the bubble is exactly (p-1)/(v m) of the ideal compute time
// (Narayanan et al. 2021, sec. 2.2).
TEST(PlanStepTime, PipelineBubbleIsPMinusOneOverVM) {
  const Workload w = Workload::of(test::gpt(48, 8192, 64), 2048);
  const config::ClusterConfig c = ideal_links();
  for (int v : {1, 2, 4})
    for (int m : {8, 16, 64}) {
      Layout l;
      l.tp = 1, l.pp = 4, l.dp = 1, l.vpp = v, l.micro_batches = m;
      const StepTime t = predict_step_time(w, l, c, predict_memory(w, l, c));
      EXPECT_NEAR(t.bubble / t.compute, 3.0 / (v * m), 1e-12) << "v " << v << " m " << m;
    }
}

// zb_h1 (Qi et al. 2023, section 3.1): the weight-gradient passes fill 1f1b's cool-down. With
// the micro-batch's time split into F = (g + a + e) / 3, B = (g + 2a + e) / 3, W = (g + e) / 3
// (GEMMs g, attention products a, element-wise e), the bubble is (p-1)(F + B - W) once m >= p;
// below that the schedule's own simulated bubble, still under 1f1b's. It holds up to p
// micro-batches on every stage (stage 0's 1f1b peak) and keeps two [N, C] output gradients per
// layer and micro-batch for W: more activation memory, which the planner reads from the plan.
TEST(PlanStepTime, ZeroBubbleScheduleFillsTheCoolDown) {
  const Workload w = Workload::of(test::gpt(48, 8192, 64), 2048);
  const config::ClusterConfig c = ideal_links();
  for (int m : {2, 8, 16, 64}) {
    Layout l;
    l.tp = 1, l.pp = 4, l.dp = 1, l.micro_batches = m;
    Layout zb = l;
    zb.zb = true;
    const MemoryBreakdown m1 = predict_memory(w, l, c), mz = predict_memory(w, zb, c);
    const StepTime t1 = predict_step_time(w, l, c, m1), tz = predict_step_time(w, zb, c, mz);
    EXPECT_LT(tz.bubble, t1.bubble) << "m " << m;
    EXPECT_EQ(tz.compute, t1.compute);
    const double g = tz.gemm / m, a = tz.attention / m, e = tz.elementwise / m;
    if (m >= 4) {
      EXPECT_NEAR(tz.bubble, 3 * (g + 3 * a + e) / 3, 1e-9 * tz.bubble) << "m " << m;
    } else {
      EXPECT_GT(tz.bubble, 3 * (g + 3 * a + e) / 3);
    }
    EXPECT_EQ(mz.in_flight, m1.in_flight);  // the busiest stage, 0: min(p, m) either way
    EXPECT_GT(mz.activations, m1.activations);
  }
  const Layout parsed = parse_layout("tp1-pp4-dp2-mb1-z1-zb", 8, 16, config::Precision::bf16);
  EXPECT_TRUE(parsed.zb);
  EXPECT_EQ(to_string(parsed), "tp1-pp4-dp2-v1-mb1-z1-rnone-zb");
  EXPECT_EQ(schedule_of(parsed), config::PipelineSchedule::zb_h1);
}

// Compute time = matmul FLOPs / (peak x sustained_fraction) + attention products / (peak x
// attention_fraction) + 3 passes over every layer's activations at memory bandwidth x
// elementwise_fraction; one GPU, no communication. The two FLOP parts are flops.hpp's 6N and 12LTC.
TEST(PlanStepTime, SingleGpuStepIsComputePlusOptimizer) {
  const config::ModelConfig m = test::model("gpt2_124m");
  const Workload w = Workload::of(m, 1024);
  const config::ClusterConfig c = ideal_links();
  Layout l;
  l.micro_batch = 8, l.micro_batches = 4, l.zero = 0;
  const MemoryBreakdown mem = predict_memory(w, l, c);
  const StepTime t = predict_step_time(w, l, c, mem);
  const double tokens = 8.0 * 4 * 1024;
  const double gemm = 6.0 * double(w.counts.matmul) * tokens;
  const double attention = 12.0 * m.num_layers * 1024.0 * m.d_model * tokens;
  EXPECT_NEAR(gemm + attention, flops_per_token(m, w.counts, 1024, Recompute::none).hardware * tokens, 1.0);
  const double peak = c.peak_tflops_bf16 * 1e12;
  const double elementwise =
      4 * 12 * 3 * mem.layer_activations_full / (c.memory_bandwidth_gb_per_s * 1e9 * c.elementwise_fraction);
  EXPECT_NEAR(t.gemm, gemm / (peak * c.sustained_fraction), 1e-9);
  EXPECT_NEAR(t.attention, attention / (peak * c.attention_fraction), 1e-9);
  EXPECT_NEAR(t.elementwise, elementwise, 1e-9);
  EXPECT_NEAR(t.compute, t.gemm + t.attention + t.elementwise, 1e-12);
  EXPECT_EQ(t.tp_comm + t.pp_comm + t.bubble + t.dp_comm, 0.0);
  EXPECT_NEAR(t.total, t.compute + t.optimizer, 1e-12);
  EXPECT_NEAR(t.mfu, tokens / t.total * flops_per_token(m, w.counts, 1024, Recompute::none).model / peak,
              1e-9);
  // Megatron-LM (validation only) ran the attention products as GEMMs.
  Layout megatron = l;
  megatron.framework = Framework::megatron_lm;
  EXPECT_NEAR(predict_step_time(w, megatron, c, mem).attention, attention / (peak * c.sustained_fraction),
              1e-9);
}

// An oversubscribed CPU node (8 ranks on 2 one-core slots): each rank gets a quarter of a slot,
// the step is the node's work unless a rank's critical path at a full slot is longer; the
// pipeline bubble is not lost there (idle ranks give their core away).
TEST(PlanStepTime, SharedNodeStepIsTheLargerOfNodeWorkAndCriticalPath) {
  const Workload w = Workload::of(test::model("bench_layouts"), 128);
  const config::ClusterConfig slot = test::cluster("local");
  const config::ClusterConfig shared = share_node(slot, 8);
  EXPECT_EQ(shared.oversubscribe, 4);
  EXPECT_DOUBLE_EQ(shared.peak_tflops_fp32, slot.peak_tflops_fp32 / 4);
  EXPECT_DOUBLE_EQ(shared.intra_node_alpha_us, slot.intra_node_alpha_us * 4);
  EXPECT_EQ(share_node(slot, 2).oversubscribe, 1);  // no more ranks than slots: unchanged
  EXPECT_THROW(share_node(test::cluster("h100_sxm_80gb"), 16), Error);
  const Layout pipe = parse_layout("tp1-pp8-dp1-mb2-z0", 8, 16, config::Precision::fp32);
  const StepTime t = predict_step_time(w, pipe, shared, predict_memory(w, pipe, shared));
  EXPECT_GT(t.bubble, 0.0);
  EXPECT_GT(t.node_work, 0.0);
  EXPECT_DOUBLE_EQ(t.total, std::max(t.node_work, t.critical_path / 4));
  EXPECT_LT(t.node_work, t.critical_path - t.bubble);  // the mean stage, not the busiest; no bubble
  // The same layout on dedicated slots (one rank per core): the critical path, bubble included.
  config::ClusterConfig dedicated = slot;
  dedicated.gpus_per_node = 8;
  const StepTime d = predict_step_time(w, pipe, dedicated, predict_memory(w, pipe, dedicated));
  EXPECT_EQ(d.node_work, 0.0);
  EXPECT_DOUBLE_EQ(d.total, d.critical_path);
}

// With assumptions, every figure has a slow and a fast end that bracket it.
TEST(PlanStepTime, AssumptionsBracketTheStep) {
  PlanRequest r;
  r.workload = Workload::of(test::model("llama2_13b"), 4096);
  r.cluster = test::cluster("h100_sxm_80gb");
  r.gpus = 64, r.global_batch = 512, r.tokens = 1e12;
  const Layout l = parse_layout("tp4-pp2-dp8-mb1-z1-sp-rfull", 64, 512, config::Precision::bf16);
  const Candidate c = evaluate(r, l);
  EXPECT_TRUE(c.uncertain);
  EXPECT_LT(c.fast.total, c.time.total);
  EXPECT_GT(c.slow.total, c.time.total);
  EXPECT_GT(c.run_slow.days, c.run.days);
  EXPECT_EQ(slowest_case(r.cluster).sustained_fraction, 0.40);
  EXPECT_EQ(fastest_case(r.cluster).sustained_fraction, 0.70);
  EXPECT_EQ(slowest_case(r.cluster).small_gemm_width, 256);  // wider penalty is slower
  r.cluster.sustained_fraction_range.clear(), r.cluster.small_gemm_width_range.clear();
  r.cluster.attention_fraction_range.clear(), r.cluster.elementwise_fraction_range.clear();
  r.cluster.overlap_efficiency_range.clear();
  const Candidate exact = evaluate(r, l);
  EXPECT_FALSE(exact.uncertain);
  EXPECT_EQ(exact.slow.total, exact.time.total);
  EXPECT_EQ(describe_assumptions(r.cluster), "");
}

// Data-parallel traffic hides behind the last micro-batch's backward when that is long enough,
// and shows when it is not (tiny micro-batch, slow network).
TEST(PlanStepTime, DataParallelTrafficOverlapsOnlyWhatTheWindowAllows) {
  const Workload w = Workload::of(test::model("llama2_7b"), 4096);
  config::ClusterConfig c = ideal_links();
  Layout l;
  l.tp = 8, l.pp = 1, l.dp = 16, l.micro_batch = 4, l.micro_batches = 4, l.zero = 1;
  const StepTime fast = predict_step_time(w, l, c, predict_memory(w, l, c));
  EXPECT_GT(fast.dp_comm, 0.0);
  EXPECT_LE(fast.dp_exposed, fast.dp_comm);
  c.inter_node_gb_per_s = 0.5;  // a slow network: most of it is exposed
  const StepTime slow = predict_step_time(w, l, c, predict_memory(w, l, c));
  EXPECT_GT(slow.dp_exposed, 0.5 * slow.dp_comm);
  EXPECT_GT(slow.total, fast.total);
}

// Tensor parallelism across nodes uses the slower link.
TEST(PlanStepTime, TensorParallelCommunicationGrowsWithTp) {
  const Workload w = Workload::of(test::model("llama2_13b"), 4096);
  const config::ClusterConfig c = ideal_links();
  Layout l2, l8;
  l2.tp = 2, l2.dp = 4, l2.micro_batches = 8;
  l8.tp = 8, l8.dp = 1, l8.micro_batches = 32;
  const StepTime t2 = predict_step_time(w, l2, c, predict_memory(w, l2, c));
  const StepTime t8 = predict_step_time(w, l8, c, predict_memory(w, l8, c));
  EXPECT_GT(t8.tp_comm / t8.compute, t2.tp_comm / t2.compute);
}

TEST(PlanStepTime, RunTimeAndCost) {
  config::ClusterConfig c = test::cluster("h100_sxm_80gb");
  const RunTime r = run_time(1e12, 1e6, 1000, c);  // 1T tokens at 1M tokens/s on 1000 GPUs
  EXPECT_DOUBLE_EQ(r.seconds, 1e6);
  EXPECT_NEAR(r.days, 1e6 / 86400, 1e-9);
  EXPECT_NEAR(r.gpu_hours, 1e6 * 1000 / 3600, 1e-6);
  EXPECT_NEAR(r.cost, r.gpu_hours * c.price_per_gpu_hour, 1e-6);
  EXPECT_NEAR(r.energy_mwh, r.gpu_hours * c.power_watts / 1e6, 1e-9);
}

}  // namespace
}  // namespace strata::plan
