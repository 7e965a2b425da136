// Time per optimizer step for a layout, and what follows from it (tokens/s, TFLOP/s, MFU).
//
//   t_mb      = FLOPs of one micro-batch on the busiest stage / (peak x sustained_fraction x gemm(C/t))
//               + 3 passes over each layer's activations at memory bandwidth (element-wise work; 4
//               with full recomputation)
//   compute   = m x t_mb                                    m micro-batches per step
//   tp_comm   = all-reduces (or all-gather + reduce-scatter) of s b h bf16 values, 4 per layer per
//               micro-batch (6 with full recomputation), ring alpha-beta over the intra-node link
//   bubble    = (p-1)/v x (t_mb + tp_comm per micro-batch)  (Narayanan et al. 2021, sec. 2.2.2)
//   pp_comm   = 2 m v point-to-point transfers of s b h / t bf16 values
//   dp_comm   = ring reduce-scatter of fp32 gradients + all-gather of parameters (ZeRO-1), or a
//               ring all-reduce; only what exceeds its overlap window is exposed
//   optimizer = bytes AdamW reads and writes per local parameter / memory bandwidth
//   step      = compute + tp_comm + bubble + pp_comm + dp_exposed + optimizer
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
  double micro_batch = 0;   // t_mb, seconds
  double compute = 0;       // seconds per step, all below too
  double tp_comm = 0;
  double bubble = 0;
  double pp_comm = 0;
  double dp_comm = 0;       // total DP collective time
  double dp_exposed = 0;    // the part not hidden behind compute
  double optimizer = 0;
  double total = 0;
  // derived
  double tokens_per_s = 0;
  double model_tflops_per_gpu = 0;     // 6N + 12LTC rule
  double hardware_tflops_per_gpu = 0;  // recomputation included
  double mfu = 0;                      // model TFLOP/s / peak
};

StepTime predict_step_time(const Workload& w, const Layout& layout, const config::ClusterConfig& cluster,
                           const MemoryBreakdown& memory);

// Ring collective times (seconds) for `bytes` over `n` ranks at `gb_per_s` and `alpha_us`.
double ring_reduce_scatter_s(double bytes, int n, double gb_per_s, double alpha_us);
double ring_all_reduce_s(double bytes, int n, double gb_per_s, double alpha_us);

// Wall-clock and accelerator time to train `tokens` at a step time.
struct RunTime {
  double seconds = 0, days = 0, gpu_hours = 0, cost = 0, energy_mwh = 0;
};
RunTime run_time(double tokens, double tokens_per_s, int gpus, const config::ClusterConfig& cluster);

}  // namespace strata::plan
