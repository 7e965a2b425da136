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

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Parameters of one transformer block held by one TP rank (Megatron, Shoeybi et al. 2019,
// sec. 3): Q/K/V and the MLP's first matrices are split by output rows (column-parallel), the
// attention output and the MLP's last matrix by input columns (row-parallel); norms and the
// row-parallel layers' biases are replicated. Mirrors make_parameter_table's block.
double layer_params_per_rank(const config::ModelConfig& m, int tp) {
  const std::int64_t C = m.d_model, F = m.ffn(), HS = m.head_size();
  const std::int64_t Q = std::int64_t(m.num_heads) * HS, KV = std::int64_t(m.kv_heads()) * HS;
  const bool ln = m.norm == config::NormKind::layernorm;
  const std::int64_t norm = 2 * (C + (ln && m.bias ? C : 0));  // attn_norm, mlp_norm
  const int mats = m.mlp == MlpKind::swiglu ? 2 : 1;           // column-parallel MLP matrices
  std::int64_t sharded = (Q + 2 * KV) * C + C * Q + mats * F * C + C * F;
  std::int64_t replicated = norm;
  if (m.bias) {
    sharded += Q + 2 * KV + mats * F;  // column-parallel biases are split with their rows
    replicated += 2 * C;               // wo and proj/down biases are added after the reduction
  }
  return double(ceil_div(sharded, tp) + replicated);
}

// Micro-batches whose activations a stage holds at its peak under 1F1B: stage s has pp - s in
// flight (Narayanan et al. 2021, sec. 2.2.1); with v virtual stages the first stage holds
// L (1 + (p-1)/(p v)) layers' worth (Korthikanti et al. 2022, sec. 4.2.3), i.e. p + (p-1)/v
// micro-batches of its L/p layers. Never more than the step has.
double in_flight(const Layout& l, int stage) {
  if (l.gpipe) return double(l.micro_batches);  // GPipe: every micro-batch's forward before any backward
  double n = double(l.pp - stage);
  if (l.vpp > 1) n += double(l.pp - 1) / l.vpp;
  return std::min(n, double(l.micro_batches));
}

}  // namespace

BytesPerParam bytes_per_param(Precision precision, int zero, int dp) {
  const double shard = zero >= 1 ? double(dp) : 1.0;
  if (precision == Precision::bf16) return {2.0, 4.0, 12.0 / shard};
  return {4.0, 4.0, 8.0 / shard};  // strata on CPU: fp32 weights and grads, Adam m and v
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
  return {double(dry.acts.total_bytes()), stored, double(dry.weights.total_bytes()), double(adam.total_bytes()),
          double(io.total_bytes())};
}

CpuStagePlan strata_cpu_stage_plan(const config::ModelConfig& cfg, const config::ParallelConfig& par,
                                   config::PipelineSchedule schedule, int microbatches, int seq_len, int stage) {
  // The engine's own plan for this pipeline rank (parallel::plan_engine), read back.
  config::ParallelConfig p = par;
  p.schedule = schedule;
  config::OptimConfig optim;  // the state's size does not depend on the optimizer's settings
  const comm::GridShape shape{par.tp, par.pp, par.dp};
  const comm::GridCoord coord{0, 0, stage};
  const parallel::EnginePlan e =
      parallel::plan_engine(cfg, p, optim, seq_len, microbatches, shape, coord, model::cpu_backend_spec(DType::f32));
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
      if (i == c.optimizer.gshard) out.grad_shard += b;
      else out.optimizer += b;
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

// strata's own plan for one pipeline rank (CPU, fp32), built the way the trainer builds it:
// the schedule's per-chunk in-flight count (parallel::max_in_flight) gives each chunk's number
// of activation slots; each chunk is a dry-run Transformer<float> with the trainer's
// ChunkPlacement; the DP optimizer's state is AdamW m and v over the padded flat buffer (1/dp of
// it under ZeRO-1, plus the reduce-scatter's gradient shard); the pipeline engine's exchange
// buffers (per slot: activation in, gradient in, gradient out) and its token/target buffers.
// See PipelineEngine's constructor (src/parallel/pipeline.cpp) and DistributedOptimizer's.
MemoryBreakdown predict_cpu_stage(const Workload& w, const Layout& l, const config::ClusterConfig& cluster,
                                  int stage) {
  const config::ModelConfig& m0 = w.model;
  config::ModelConfig m = m0;
  m.recompute = l.recompute == Recompute::full ? config::RecomputeKind::full : config::RecomputeKind::none;
  config::ParallelConfig par;
  par.tp = l.tp, par.pp = l.pp, par.dp = l.dp, par.virtual_stages = l.vpp;
  par.micro_batch_size = l.micro_batch;
  par.sequence_parallel = l.sequence_parallel && l.tp > 1;
  par.zero_stage = l.zero;
  const config::PipelineSchedule kind = l.vpp > 1 ? config::PipelineSchedule::interleaved_1f1b
                                        : l.gpipe ? config::PipelineSchedule::gpipe
                                                  : config::PipelineSchedule::one_f_one_b;
  const CpuStagePlan plan = strata_cpu_stage_plan(m, par, kind, l.micro_batches, w.seq_len, stage);

  MemoryBreakdown mb;
  mb.stage = stage;
  mb.params_on_rank = plan.params_on_rank;
  mb.weights = mb.gradients = plan.parameters_and_grads / 2;
  mb.optimizer = plan.optimizer;
  mb.activations = plan.activations;
  mb.comm_buffers = plan.grad_shard + plan.pipeline_buffers;
  mb.in_flight = plan.slots / double(l.vpp);
  mb.workspace = cluster.reserved_gib * GiB + plan.step_batch;
  // Per layer, one micro-batch (for the step-time model's element-wise traffic and reports).
  const int layers = std::max(1, m0.num_layers / (l.pp * l.vpp));
  const StrataCpuPlan one = strata_cpu_plan(m, l.micro_batch, w.seq_len, l.tp, layers);
  mb.activation_per_layer = one.activations_stored / layers;
  config::ModelConfig kept_all = m;
  kept_all.recompute = config::RecomputeKind::none;
  mb.layer_activations_full = strata_cpu_plan(kept_all, l.micro_batch, w.seq_len, l.tp, 1).activations_stored -
                              strata_cpu_plan(kept_all, l.micro_batch, w.seq_len, l.tp, 0).activations_stored;
  return mb;
}

}  // namespace

namespace {

// GPU (bf16) memory of one pipeline rank: Megatron-LM's accounting (Korthikanti et al. 2022 for
// the activations, the distributed-optimizer table for the bytes per parameter).
//
// THE ONE PLACE the GPU memory prediction is made. The GPU engine's dry-run plan (issue 14:
// parallel::plan_engine(...), usable in a CPU-only build) replaces this body so that prediction
// and allocation cannot drift, as predict_cpu_stage does for the CPU engine. Keep every field of
// MemoryBreakdown filled: the step-time model reads params_on_rank (DP traffic, optimizer) and
// layer_activations_full (element-wise traffic of strata's engine; the Megatron-LM validation
// computes its own from korthikanti_layer_activation_bytes, so the swap does not move it).
MemoryBreakdown predict_gpu_stage(const Workload& w, const Layout& l, const config::ClusterConfig& cluster,
                                  int stage) {
  const config::ModelConfig& m = w.model;
  const int layers = m.num_layers / l.pp;
  const bool first = stage == 0, last = stage == l.pp - 1;
  const double C = m.d_model, V = double(ceil_div(m.vocab_size, l.tp));
  const double s = w.seq_len, b = l.micro_batch;

  // Parameters on this rank: its layers, plus the vocab-parallel embedding on the first stage
  // and the output layer on the last (a tied output layer is a second copy of the embedding
  // when they sit on different stages, as in Megatron-LM).
  double P = layer_params_per_rank(m, l.tp) * layers;
  if (first) {
    P += V * C;
    if (m.positions == config::PositionKind::learned) P += double(m.max_seq_len) * C;
  }
  if (last) {
    P += double(w.counts.final_norm);
    if (!m.tied_embeddings || l.pp > 1) P += V * C;
  }

  MemoryBreakdown mb;
  mb.stage = stage;
  mb.params_on_rank = P;
  mb.in_flight = in_flight(l, stage);
  const BytesPerParam bpp = bytes_per_param(l.precision, l.zero, l.dp);
  mb.workspace = cluster.reserved_gib * GiB;
  mb.weights = bpp.weights * P;
  mb.gradients = bpp.gradients * P;
  mb.optimizer = bpp.optimizer * P;

  const bool sp = l.sequence_parallel && l.tp > 1;
  const double full_layer =
      korthikanti_layer_activation_bytes(m, s, b, l.tp, sp, l.recompute == Recompute::selective);
  // Full recomputation keeps each layer's input only, 2 s b h (/t under SP; Korthikanti sec. 5),
  // and rebuilds one layer at a time in the backward: one layer's activations of working space.
  const double kept = l.recompute == Recompute::full ? 2.0 * s * b * C / (sp ? l.tp : 1) : full_layer;
  mb.activation_per_layer = kept;
  mb.layer_activations_full = korthikanti_layer_activation_bytes(m, s, b, l.tp, sp, false);
  double act = kept * layers * mb.in_flight;
  if (l.recompute == Recompute::full) act += korthikanti_layer_activation_bytes(m, s, b, l.tp, sp, false);
  // Outside the layers (Korthikanti sec. 4.3): the embedding's dropout mask on the first stage
  // (s b h per micro-batch in flight); the final norm's input and output (4 s b h) and the fp32
  // logits of the cross-entropy (4 s b V / t) on the last.
  if (first) act += s * b * C / (sp ? l.tp : 1) * mb.in_flight;
  if (last) act += 4.0 * s * b * C / (sp ? l.tp : 1) + 4.0 * s * b * V;
  mb.activations = act;

  // Communication buffers: pipeline send and receive of one activation and one gradient
  // (2 s b h bytes each, split over TP by Megatron's scatter/gather, Narayanan et al. 2021
  // sec. 4.1); the full-sequence output of a sequence-parallel all-gather.
  if (l.pp > 1) mb.comm_buffers += 4.0 * 2.0 * s * b * C / l.tp;
  if (sp) mb.comm_buffers += 2.0 * s * b * C;
  return mb;
}

}  // namespace

MemoryBreakdown predict_stage_memory(const Workload& w, const Layout& l, const config::ClusterConfig& cluster,
                                     int stage) {
  if (l.precision == Precision::fp32) return predict_cpu_stage(w, l, cluster, stage);
  return predict_gpu_stage(w, l, cluster, stage);
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
