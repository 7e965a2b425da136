// Time per optimizer step for a layout, and what follows from it (tokens/s, TFLOP/s, MFU).
//
// Every term names the efficiency it is computed from; the cluster file says where each one comes
// from (fitted on measured runs, or an assumption with a range: docs/planner-validation.md).
//
//   t_mb      = GEMM FLOPs of one micro-batch on the busiest stage / (peak x sustained_fraction
//                 x w / (w + small_gemm_width)),  w = C / t (narrow per-rank GEMMs run slower)
//             + attention products (Q K^T, A V) / (peak x attention_fraction)      strata's kernel
//             + element-wise traffic: 3 passes over each layer's activations (4 with full
//                 recomputation) / (memory bandwidth x elementwise_fraction)
//   compute   = m x t_mb                                    m micro-batches per step
//   tp_comm   = all-reduces (or all-gather + reduce-scatter) of s b h values, 4 per layer per
//               micro-batch (6 with full recomputation), ring alpha-beta over the intra-node link
//   bubble    = (p-1)/v x (t_mb + tp_comm per micro-batch)  (Narayanan et al. 2021, sec. 2.2.2)
//   pp_comm   = 2 m v point-to-point transfers of s b h / t values
//   dp_comm   = ring reduce-scatter of fp32 gradients + all-gather of parameters (ZeRO-1), or a
//               ring all-reduce; only what exceeds its overlap window is exposed
//   optimizer = bytes AdamW reads and writes per local parameter / (bandwidth x elementwise_fraction)
//   step      = compute + tp_comm + bubble + pp_comm + dp_exposed + optimizer
//
// Oversubscribed CPU nodes (cluster.oversubscribe = k > 1 ranks per core slot): a rank waiting on
// another yields its core, so the node never idles while one of its ranks has work. The step is
// then the larger of the node's work (the mean over its ranks of their busy time: compute without
// the bubble, communication, optimizer) and the critical path above at one full slot per rank
// (step / k). Each rank's figures are the slot's divided by k (share_node()).
//
// Ring collectives over n ranks moving `bytes` (Thakur, Rabenseifner & Gropp 2005, "Optimization
// of Collective Communication Operations in MPICH", sec. 4; Patarasuk & Yuan 2009):
//   reduce-scatter = all-gather = (n-1) alpha + (n-1)/n x bytes / beta;   all-reduce = twice that.
#pragma once
#include "strata/config/cluster.hpp"
#include "strata/plan/layout.hpp"
#include "strata/plan/memory.hpp"

namespace strata::plan {

struct StepTime {
  double micro_batch = 0;  // t_mb on the busiest stage, seconds
  double gemm = 0;         // seconds per step on the busiest stage: the three parts of compute
  double attention = 0;
  double elementwise = 0;
  double compute = 0;  // gemm + attention + elementwise
  double tp_comm = 0;
  double bubble = 0;
  double pp_comm = 0;
  double dp_comm = 0;     // total DP collective time
  double dp_exposed = 0;  // the part not hidden behind compute
  double optimizer = 0;
  double cp_comm = 0;        // context parallelism: ring or Ulysses exchanges and the gradient sum over cp
  double cp_exposed = 0;     // the part not hidden behind the attention blocks
  double critical_path = 0;  // compute + tp + bubble + pp + dp_exposed + optimizer + cp_exposed
  double node_work = 0;      // oversubscribed CPU node: mean busy time of its ranks (else 0)
  double total = 0;          // the step: critical_path, or max(node_work, critical_path / k)
  // derived
  double tokens_per_s = 0;
  double model_tflops_per_gpu = 0;     // 6N + 12LTC rule
  double hardware_tflops_per_gpu = 0;  // recomputation included
  double mfu = 0;                      // model TFLOP/s / peak (of the slot: k ranks share it)
};

StepTime predict_step_time(const Workload& w, const Layout& layout, const config::ClusterConfig& cluster,
                           const MemoryBreakdown& memory);

// The FLOPs the time model charges per micro-batch (b sequences of s tokens) on one TP rank:
// matmuls of `layers` transformer layers (+ the output layer when `head`), and their attention
// products, forward + backward + what recomputation repeats.
struct MicroBatchFlops {
  double gemm = 0, attention = 0;
};
MicroBatchFlops micro_batch_flops(const Workload& w, const Layout& layout, int layers, bool head);

// Ring collective times (seconds) for `bytes` over `n` ranks at `gb_per_s` and `alpha_us`.
double ring_reduce_scatter_s(double bytes, int n, double gb_per_s, double alpha_us);
double ring_all_reduce_s(double bytes, int n, double gb_per_s, double alpha_us);

// A CPU node running `ranks_per_node` ranks on its slots (cluster.gpus_per_node cores or core
// groups): with more ranks than slots each rank gets slots / ranks of a slot's peak, memory
// bandwidth, link bandwidth and memory, and the step model's shared-node bound applies.
// Unchanged when ranks_per_node <= gpus_per_node. Throws for accelerators.
config::ClusterConfig share_node(config::ClusterConfig cluster, int ranks_per_node);

// Wall-clock and accelerator time to train `tokens` at a step time.
struct RunTime {
  double seconds = 0, days = 0, gpu_hours = 0, cost = 0, energy_mwh = 0;
};
RunTime run_time(double tokens, double tokens_per_s, int gpus, const config::ClusterConfig& cluster);

}  // namespace strata::plan
