// Memory per rank for a layout: what the most loaded pipeline stage holds.
//
//   weights + gradients + optimizer state      bytes per parameter by precision and ZeRO stage
//   activations                                 per layer x layers per stage x micro-batches in flight
//   communication buffers, workspace            pipeline send/recv, sequence-parallel gathers;
//                                               the runtime's reserve (CUDA context, NCCL, slack)
//
// Two activation models:
//   bf16 (GPU): Korthikanti et al. 2022, sec. 4, eq. 1-2 and table 2, generalised to GQA and
//               SwiGLU (reduces to 34 s b h + 5 a s^2 b for a GPT layer);
//   fp32 (CPU): strata's own plan for the rank, built the way the trainer builds it
//               (strata_cpu_stage_plan: dry-run chunks with the schedule's activation slots,
//               the DP optimizer's state, the pipeline engine's buffers; every buffer 64-byte
//               aligned), so the prediction equals the trainer's planned bytes.
#pragma once
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"
#include "strata/plan/layout.hpp"

namespace strata::plan {

struct MemoryBreakdown {
  int stage = 0;              // the pipeline stage this describes (the most loaded)
  double params_on_rank = 0;  // parameter elements this rank holds
  double weights = 0;         // bytes
  double gradients = 0;
  double optimizer = 0;
  double activations = 0;             // all in-flight micro-batches
  double activation_per_layer = 0;    // one layer, one micro-batch, as kept (recomputation applied)
  double layer_activations_full = 0;  // one layer, one micro-batch, everything its forward writes
  double in_flight = 0;               // micro-batches whose activations are alive at the peak
  double comm_buffers = 0;
  double workspace = 0;  // cluster.reserved_gib and other fixed costs
  double total() const { return weights + gradients + optimizer + activations + comm_buffers + workspace; }
};

// The most loaded stage of `layout` (max over stages of total()).
MemoryBreakdown predict_memory(const Workload& w, const Layout& layout, const config::ClusterConfig& cluster);

// One stage (0 .. pp-1).
MemoryBreakdown predict_stage_memory(const Workload& w, const Layout& layout,
                                     const config::ClusterConfig& cluster, int stage);

// Bytes of strata's activation MemoryPlan for one micro-batch of `batch` x `seq_len` on one rank
// (what Transformer<float>::activation_memory().total_bytes() reports), and of the parameter
// plan (parameters + gradients) and the AdamW state; built without allocating.
struct StrataCpuPlan {
  double activations = 0;
  double activations_stored = 0;  // lifetime "step": kept from forward to backward
  double parameters_and_grads = 0;
  double optimizer = 0;
  double batch = 0;  // the trainer's input and target buffers
};
StrataCpuPlan strata_cpu_plan(const config::ModelConfig& model, int batch, int seq_len, int tp = 1,
                              int layers = -1);

// strata's plan for one pipeline rank of a CPU fp32 layout (what that rank's trainer plans and
// allocates), built from dry-run Transformer<float> chunks with the trainer's ChunkPlacement and
// as many activation slots as the schedule keeps micro-batches of each chunk in flight
// (parallel::max_in_flight: gpipe m, 1f1b pp - stage, interleaved per chunk). Bytes.
struct CpuStagePlan {
  double parameters_and_grads = 0;  // every chunk's parameter plan (parameters + gradients)
  double optimizer = 0;             // AdamW m and v (DistributedOptimizer::state_bytes, aligned)
  double grad_shard = 0;            // ZeRO-1's reduce-scatter destination (dp > 1)
  double activations = 0;           // every chunk's activation plan (all slots + work space)
  double pipeline_buffers = 0;      // the engine's per-slot act/grad exchange + token/target buffers
  double step_batch = 0;            // the trainer's tokens and targets of all the step's micro-batches
  double params_on_rank = 0;        // parameter elements (padded flat buffers)
  int slots = 0;                    // activation slots over all chunks
  std::vector<int> chunk_slots;
  // What the trainer logs as "planned total" (parameters + optimizer state + activations).
  double trainer_planned() const { return parameters_and_grads + optimizer + activations + pipeline_buffers; }
  double total() const { return trainer_planned() + grad_shard + step_batch; }
};
CpuStagePlan strata_cpu_stage_plan(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                                   config::PipelineSchedule schedule, int microbatches, int seq_len,
                                   int stage);

// Korthikanti et al. 2022, sec. 4.1, eq. 1-2 and table 2: bf16 activation bytes of one layer
// for one micro-batch of b sequences of s tokens on one of t tensor-parallel ranks, written term by
// term so GQA and SwiGLU fit (34 s b h + 5 a s^2 b for a GPT layer without TP). `sp`: sequence
// parallelism; `selective`: selective recomputation (drops the 5 a s^2 b term). What Megatron-LM
// 2021-22 keeps (dropout masks and the s x s scores included).
double korthikanti_layer_activation_bytes(const config::ModelConfig& model, double s, double b, int tp,
                                          bool sp, bool selective);

// Bytes per parameter (Megatron-LM docs/distrib_optimizer.md, "bytes per parameter" table;
// Rajbhandari et al. 2020, ZeRO, sec. 3.1 / 5.1): bf16 weights 2, fp32 main grads 4, fp32
// master weights + Adam m + v 12 (divided by dp under ZeRO-1); fp32: 4 + 4 + 8.
struct BytesPerParam {
  double weights, gradients, optimizer;
};
BytesPerParam bytes_per_param(config::Precision precision, int zero, int dp);

}  // namespace strata::plan
