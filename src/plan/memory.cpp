// Memory per rank; see memory.hpp for the model and its sources.
#include "strata/plan/memory.hpp"

#include "strata/model/stage_plan.hpp"

#include <algorithm>
#include <cmath>

#include "strata/core/memory_plan.hpp"
#include "strata/parallel/distributed_optimizer.hpp"
#include "strata/parallel/engine.hpp"
#include "strata/parallel/schedule.hpp"

namespace strata::plan {

using config::MlpKind;
using config::Precision;

namespace {

constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

BytesPerParam bytes_per_param(Precision precision, int zero, int dp) {
  const double shard = zero >= 1 ? double(dp) : 1.0, grad_shard = zero >= 2 ? double(dp) : 1.0,
               param_shard = zero >= 3 ? double(dp) : 1.0;
  if (precision == Precision::bf16) return {2.0 / param_shard, 4.0 / grad_shard, 12.0 / shard};
  return {4.0 / param_shard, 4.0 / grad_shard,
          8.0 / shard};  // strata on CPU: fp32 weights and grads, Adam m and v
}

// Korthikanti et al. 2022, sec. 4.1, eq. 1 (bf16 activations, bytes, one layer, one micro-batch
// of b sequences of s tokens), written term by term so GQA (K, V of width h_kv) and SwiGLU (three
// F-wide tensors) fit:
//   kept whole under TP without sequence parallelism, 10 s b h: the two norm inputs (2 x 2sbh),
//     the QKV input (2sbh), the MLP input (2sbh), two dropout masks (2 x sbh);
//   split by TP, 24 s b h + 5 a s^2 b for GPT: Q (2sbh), K and V (2 x 2sbh_kv), the output
//     projection's input (2sbh), softmax output + its dropout mask + dropout output (5 a s^2 b),
//     the MLP's hidden tensors (GELU: 2 x 2sbF; SwiGLU: 3 x 2sbF).
// Sequence parallelism (sec. 4.2.2) splits the first part too: total / t (eq. 2's 34/t).
// Selective recomputation (sec. 5) drops the 5 a s^2 b term. strata has no dropout, so these
// figures overstate it by 2sbh + a s^2 b per layer; kept as published (conservative).
double korthikanti_layer_activation_bytes(const config::ModelConfig& m, double s, double b, int tp, bool sp,
                                          bool selective) {
  const double h = m.d_model, a = m.num_heads, F = m.ffn();
  const double hkv = double(m.kv_heads()) * m.head_size();
  const double replicated = 10.0 * s * b * h;
  const double core = selective ? 0.0 : 5.0 * a * s * s * b;
  const double mlp = (m.mlp == MlpKind::swiglu ? 3.0 : 2.0) * 2.0 * s * b * F;
  const double split = 2.0 * s * b * h + 4.0 * s * b * hkv + 2.0 * s * b * h + core + mlp;
  return sp ? (replicated + split) / tp : replicated + split / tp;
}

StrataCpuPlan strata_cpu_plan(const config::ModelConfig& cfg, int batch, int seq_len, int tp, int layers) {
  // strata's own plan: the stage's memory plan (model::StagePlan, what the stage allocates),
  // AdamW's state and the trainer's token buffers beside it.
  model::ChunkPlacement place;
  place.tp_size = tp;
  place.num_layers = layers >= 0 ? layers : cfg.num_layers;
  const model::StagePlan dry(cfg, place, batch, seq_len, 1, model::cpu_backend_spec(DType::f32));
  double stored = 0;
  for (const auto& e : dry.acts.entries())
    if (e.lifetime == "step") stored += double((e.nbytes + 63) / 64 * 64);
  MemoryPlan adam("optimizer"), io("batch");
  adam.add("adam.m", {dry.table.numel()}, DType::f32, "persistent");
  adam.add("adam.v", {dry.table.numel()}, DType::f32, "persistent");
  io.add("tokens", {std::int64_t(batch) * seq_len}, DType::i32, "step");
  io.add("targets", {std::int64_t(batch) * seq_len}, DType::i32, "step");
  return {double(dry.acts.total_bytes()), stored, double(dry.weights.total_bytes()),
          double(adam.total_bytes()), double(io.total_bytes())};
}

CpuStagePlan strata_cpu_stage_plan(const config::ModelConfig& cfg, const config::ParallelConfig& par,
                                   config::PipelineSchedule schedule, int microbatches, int seq_len,
                                   int stage) {
  // The engine's own plan for this pipeline rank (parallel::plan_engine), read back.
  config::ParallelConfig p = par;
  p.schedule = schedule;
  config::OptimConfig optim;  // the state's size does not depend on the optimizer's settings
  comm::GridShape shape{par.tp, par.pp, par.dp};
  shape.cp = par.cp;  // the stages hold seq_len / cp positions
  const comm::GridCoord coord{0, 0, stage};
  const parallel::EnginePlan e = parallel::plan_engine(cfg, p, optim, seq_len, microbatches, shape, coord,
                                                       model::cpu_backend_spec(DType::f32));
  CpuStagePlan out;
  for (const parallel::ChunkPlan& c : e.chunks) {
    out.slots += c.slots;
    out.chunk_slots.push_back(c.slots);
    out.parameters_and_grads += double(c.stage.weights.total_bytes());
    out.activations += double(c.stage.acts.total_bytes());
    out.params_on_rank += double(c.stage.table.numel());
    const auto& entries = c.optimizer.plan.entries();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const double b = double((entries[i].nbytes + 63) / 64 * 64);
      if (c.optimizer.is_gradient(i) || c.optimizer.is_parameter(i))  // ZeRO-2/3's buffers
        out.parameters_and_grads += b;
      else if (i == c.optimizer.gshard)
        out.grad_shard += b;
      else
        out.optimizer += b;
    }
  }
  out.pipeline_buffers = double(e.pipeline.total_bytes() + e.host.total_bytes());
  const std::int64_t N = std::int64_t(par.micro_batch_size) * seq_len;
  MemoryPlan step_batch("step batch");
  step_batch.add("tokens", {microbatches, N}, DType::i32, "step");
  step_batch.add("targets", {microbatches, N}, DType::i32, "step");
  out.step_batch = double(step_batch.total_bytes());
  return out;
}

namespace {

// Bytes of a MemoryPlan entry as the plan lays it out (each buffer 64-byte aligned).
double aligned_bytes(const MemoryPlan::Entry& e) { return double((e.nbytes + 63) / 64 * 64); }

// One pipeline rank's memory on strata's engine, for any backend: the engine's own plan
// (parallel::plan_engine: every chunk's stage plan with the schedule's activation slots, the
// optimizer's state and shards, the pipeline buffers, the host staging) read back, so the
// prediction is what the engine allocates (on GPUs too, in a CPU-only build; tested byte for
// byte against the dry run). Mapping: weights = the compute copy, gradients = the gradient
// buffer, optimizer = master weights (GPU), Adam moments and the AdamW segment table; comm
// buffers = ZeRO-1's reduced shard, the bf16 reduction staging, the pipeline exchange (and on
// the CPU the host staging, the same memory); workspace = the cluster's reserve (cuBLAS work
// space and NCCL buffers on GPUs, which the engine does not plan) and on the CPU the trainer's
// step batch.
MemoryBreakdown predict_engine_stage(const Workload& w, const Layout& l, const config::ClusterConfig& cluster,
                                     int stage, const model::BackendSpec& spec) {
  const config::ModelConfig& m0 = w.model;
  config::ModelConfig m = m0;
  m.recompute = l.recompute == Recompute::full ? config::RecomputeKind::full : config::RecomputeKind::none;
  config::ParallelConfig par;
  par.tp = l.tp, par.pp = l.pp, par.dp = l.dp, par.virtual_stages = l.vpp;
  par.micro_batch_size = l.micro_batch;
  par.sequence_parallel = l.sequence_parallel && l.tp > 1;
  par.zero_stage = l.zero;
  par.cp = l.cp;
  par.cp_mode = l.ulysses ? config::CpMode::ulysses : config::CpMode::ring;
  par.schedule = schedule_of(l);
  comm::GridShape shape{l.tp, l.pp, l.dp};
  shape.cp = l.cp;  // the stages hold seq_len / cp positions: activations / cp
  const parallel::EnginePlan e = parallel::plan_engine(m, par, config::OptimConfig{}, w.seq_len,
                                                       l.micro_batches, shape, {0, 0, stage}, spec);
  MemoryBreakdown mb;
  mb.stage = stage;
  int slots = 0;
  for (const parallel::ChunkPlan& c : e.chunks) {
    slots += c.slots;
    mb.params_on_rank += double(c.stage.table.numel());
    if (c.stage.params != model::StagePlan::none)
      mb.weights += aligned_bytes(c.stage.weights.entries()[c.stage.params]);
    if (c.stage.grads != model::StagePlan::none)
      mb.gradients += aligned_bytes(c.stage.weights.entries()[c.stage.grads]);
    if (c.stage.held_grads != model::StagePlan::none)  // zb_h1 with ZeRO-2/3: B's held gradients
      mb.gradients += aligned_bytes(c.stage.weights.entries()[c.stage.held_grads]);
    mb.activations += double(c.stage.acts.total_bytes());
    const auto& entries = c.optimizer.plan.entries();
    const parallel::OptimizerMemory& o = c.optimizer;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const bool comm = i == o.gshard || i == o.stage || i == o.stage_shard;
      // ZeRO-2: the edge buffer and the two layer-unit buffers are the gradient memory.
      const bool grad = o.is_gradient(i);
      (o.is_parameter(i) ? mb.weights
       : grad            ? mb.gradients
       : comm            ? mb.comm_buffers
                         : mb.optimizer) += aligned_bytes(entries[i]);
    }
  }
  mb.comm_buffers += double(e.pipeline.total_bytes());
  mb.in_flight = slots / double(l.vpp);
  mb.workspace = cluster.reserved_gib * GiB;
  if (spec.host_memory) {
    mb.comm_buffers += double(e.host.total_bytes());
    const std::int64_t N = std::int64_t(l.micro_batch) * w.seq_len;
    MemoryPlan step_batch("step batch");
    step_batch.add("tokens", {l.micro_batches, N}, DType::i32, "step");
    step_batch.add("targets", {l.micro_batches, N}, DType::i32, "step");
    mb.workspace += double(step_batch.total_bytes());
  }
  // Per layer, one micro-batch (for the step-time model's element-wise traffic and reports):
  // a stage of `layers` layers against one of 1 and of 0, as kept and as the forward writes.
  const int layers = std::max(1, m0.num_layers / (l.pp * l.vpp));
  auto stored = [&](const config::ModelConfig& mc, int n) {
    model::ChunkPlacement place;
    place.tp_size = l.tp;
    place.num_layers = n;
    place.vocab_multiple = spec.vocab_multiple;
    place.cp_size = l.cp;
    place.cp_mode = par.cp_mode;
    const model::StagePlan p(mc, place, l.micro_batch, w.seq_len / l.cp, 1, spec);
    double b = 0;
    for (const auto& en : p.acts.entries())
      if (en.lifetime == "step") b += aligned_bytes(en);
    return b;
  };
  mb.activation_per_layer = stored(m, layers) / layers;
  config::ModelConfig kept_all = m;
  kept_all.recompute = config::RecomputeKind::none;
  mb.layer_activations_full = stored(kept_all, 1) - stored(kept_all, 0);
  return mb;
}

}  // namespace

MemoryBreakdown predict_stage_memory(const Workload& w, const Layout& l, const config::ClusterConfig& cluster,
                                     int stage) {
  return predict_engine_stage(
      w, l, cluster, stage,
      l.precision == Precision::fp32 ? model::cpu_backend_spec(DType::f32) : model::cuda_backend_spec());
}

MemoryBreakdown predict_memory(const Workload& w, const Layout& l, const config::ClusterConfig& cluster) {
  MemoryBreakdown worst = predict_stage_memory(w, l, cluster, 0);
  if (l.pp > 1) {
    const MemoryBreakdown tail = predict_stage_memory(w, l, cluster, l.pp - 1);
    if (tail.total() > worst.total()) worst = tail;
  }
  return worst;
}

}  // namespace strata::plan
