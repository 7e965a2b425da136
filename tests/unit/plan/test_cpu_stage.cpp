// The planner's CPU (fp32) prediction for pipelined and tensor-parallel layouts is strata's own
// plan: per pipeline stage, dry-run Transformer<float> chunks with the trainer's ChunkPlacement
// and one activation slot per micro-batch the schedule keeps in flight, the ZeRO-1 optimizer
// state and gradient shard, and the pipeline engine's exchange buffers, to the byte.
#include <gtest/gtest.h>

#include "plan_test_util.hpp"
#include "strata/model/transformer.hpp"
#include "strata/parallel/schedule.hpp"
#include "strata/plan/memory.hpp"

namespace strata::plan {
namespace {

double aligned(double bytes) { return double((std::int64_t(bytes) + 63) / 64 * 64); }

// The bench_layouts model (configs/bench_layouts.yaml): 8 layers, 256 wide, 8 heads, vocab 2048.
config::ModelConfig bench_model() { return test::gpt(8, 256, 8, 2048, 128); }

config::ClusterConfig cpu_without_reserve() {
  config::ClusterConfig c = test::cluster("local");
  c.reserved_gib = 0;
  return c;
}

struct Expected {
  double params_and_grads = 0, activations = 0, optimizer = 0, comm = 0;
};

// What the trainer's rank at (stage, tp_rank 0) plans, built here chunk by chunk: layers split
// evenly over pp * v virtual stages, chunk c of stage s is virtual stage c * pp + s.
Expected build_stage(const config::ModelConfig& m, const Layout& l, int seq, int stage,
                     const std::vector<int>& slots_per_chunk) {
  Expected e;
  const int n = l.pp * l.vpp, last = n - 1, per = m.num_layers / n;
  double exchange = 0;
  for (int c = 0; c < l.vpp; ++c) {
    const int vs = c * l.pp + stage;
    model::ChunkPlacement p;
    p.tp_size = l.tp;
    p.first_layer = vs * per;
    p.num_layers = per;
    p.has_embedding = vs == 0;
    p.has_head = vs == last;
    p.sequence_parallel = l.sequence_parallel;
    p.flat_multiple = l.dp;
    const model::StagePlan chunk(m, p, l.micro_batch, seq, slots_per_chunk[std::size_t(c)],
                                 model::cpu_backend_spec(DType::f32));
    e.params_and_grads += double(chunk.weights.total_bytes());
    e.activations += double(chunk.acts.total_bytes());
    const std::int64_t padded = (chunk.table.numel() + l.dp - 1) / l.dp * l.dp;
    const double state = l.zero == 1 && l.dp > 1 ? double(padded / l.dp) : double(padded);
    e.optimizer += 2 * aligned(4 * state);                      // AdamW m, v
    if (l.zero == 1 && l.dp > 1) e.comm += aligned(4 * state);  // the reduce-scatter's shard
    const double act = double(l.micro_batch) * seq / (l.sequence_parallel ? l.tp : 1) * m.d_model * 4;
    for (int s = 0; s < slots_per_chunk[std::size_t(c)]; ++s)
      exchange +=
          2 * aligned(vs == 0 ? 0 : act) + aligned(vs == last ? 0 : act);  // act_in, grad_out; grad_in
  }
  // The engine's host staging: tokens, targets and losses of every micro-batch.
  e.comm += exchange + 3 * aligned(4.0 * l.micro_batches * l.micro_batch * seq);
  return e;
}

void expect_stage(const config::ModelConfig& m, const Layout& l, int seq, int stage,
                  const std::vector<int>& slots) {
  const Expected e = build_stage(m, l, seq, stage, slots);
  const MemoryBreakdown mb = predict_stage_memory(Workload::of(m, seq), l, cpu_without_reserve(), stage);
  SCOPED_TRACE(to_string(l) + " stage " + std::to_string(stage));
  EXPECT_EQ(mb.weights + mb.gradients, e.params_and_grads);
  EXPECT_EQ(mb.activations, e.activations);
  EXPECT_EQ(mb.optimizer, e.optimizer);
  EXPECT_EQ(mb.comm_buffers, e.comm);
  double sum = 0;
  for (int s : slots) sum += s;
  EXPECT_DOUBLE_EQ(mb.in_flight, sum / l.vpp);
  // The trainer's step batch: every micro-batch's tokens and targets.
  EXPECT_EQ(mb.workspace, 2 * aligned(4.0 * l.micro_batches * l.micro_batch * seq));
}

Layout cpu_layout(const std::string& text, int gpus = 8, int global_batch = 16) {
  Layout l = parse_layout(text, gpus, global_batch, config::Precision::fp32);
  return l;
}

// 1F1B keeps pp - stage micro-batches in flight: stage 0 holds 2 slots, stage 1 one.
TEST(PlanCpuStage, OneFOneBPipelineWithTensorAndSequenceParallelism) {
  const config::ModelConfig m = bench_model();
  const Layout l = cpu_layout("tp2-pp2-dp2-mb2-z1-sp");
  ASSERT_EQ(l.micro_batches, 4);
  expect_stage(m, l, 128, 0, {2});
  expect_stage(m, l, 128, 1, {1});
  // Without sequence parallelism and with a replicated optimizer.
  const Layout l0 = cpu_layout("tp2-pp2-dp2-mb2-z0");
  expect_stage(m, l0, 128, 0, {2});
  expect_stage(m, l0, 128, 1, {1});
}

// GPipe keeps every micro-batch in flight on every stage.
TEST(PlanCpuStage, GpipeKeepsAllMicroBatches) {
  const config::ModelConfig m = bench_model();
  const Layout l = cpu_layout("tp2-pp2-dp2-mb2-z1-gpipe");
  ASSERT_TRUE(l.gpipe);
  expect_stage(m, l, 128, 0, {4});
  expect_stage(m, l, 128, 1, {4});
}

// Interleaved 1F1B: two chunks per rank, slots per chunk from the schedule itself.
TEST(PlanCpuStage, InterleavedChunksFollowTheSchedule) {
  const config::ModelConfig m = bench_model();
  const Layout l = cpu_layout("tp2-pp2-dp2-v2-mb2-z1-sp");
  for (int stage = 0; stage < 2; ++stage) {
    const auto sched = parallel::build_schedule(config::PipelineSchedule::interleaved_1f1b, 2, stage, 4, 2);
    const std::vector<int> slots = {parallel::max_in_flight(sched, 0), parallel::max_in_flight(sched, 1)};
    expect_stage(m, l, 128, stage, slots);
  }
}

// Eight stages of one layer each (tp1-pp8-dp1, m = 8 micro-batches of 2): stage s holds 8 - s.
TEST(PlanCpuStage, EightStagesHoldPpMinusStageSlots) {
  const config::ModelConfig m = bench_model();
  const Layout l = cpu_layout("tp1-pp8-dp1-mb2-z0");
  for (int stage : {0, 3, 7}) expect_stage(m, l, 128, stage, {8 - stage});
  // The most loaded rank is the first stage (8 slots) or the last (the output layer and logits).
  const MemoryBreakdown worst = predict_memory(Workload::of(m, 128), l, cpu_without_reserve());
  EXPECT_TRUE(worst.stage == 0 || worst.stage == 7);
}

}  // namespace
}  // namespace strata::plan
