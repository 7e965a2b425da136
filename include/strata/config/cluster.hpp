// A cluster (or machine) description for the planner: what one accelerator can do, how much
// memory it has, and the links between accelerators. configs/clusters/*.yaml, one mapping per
// file; loaded through the same schema machinery as job configs (unknown keys with
// "did you mean", file:line:column in every message).
//
// Units: FLOP/s in TFLOP/s (1e12), bandwidths in GB/s (1e9 bytes/s) per accelerator and per
// direction, latencies in microseconds, memory in GiB (2^30 bytes).
#pragma once
#include <string>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::config {

// Training precision the planner assumes: bf16 compute with fp32 master weights and Adam
// state (GPU, Megatron-LM's mixed precision), or plain fp32 (strata on CPU).
enum class Precision { bf16, fp32 };

struct ClusterConfig {
  std::string name = "custom";
  std::string gpu = "accelerator";  // label in tables and messages: "H100 SXM 80GB"
  DeviceKind device = DeviceKind::cuda;
  Precision precision = Precision::bf16;
  int gpus_per_node = 8;
  double peak_tflops_bf16 = 0;  // dense tensor-core peak (no sparsity)
  double peak_tflops_fp32 = 0;
  double memory_gib = 80;                   // per accelerator
  double reserved_gib = 0;                  // runtime's share: CUDA context, NCCL, allocator slack
                                            // (on CPU: the process's baseline resident memory)
  double memory_bandwidth_gb_per_s = 1000;  // HBM (or DRAM): the optimizer step is bound by it
  double intra_node_gb_per_s = 100;         // NVLink per GPU per direction
  double inter_node_gb_per_s = 25;          // network per GPU per direction (its NIC share)
  double intra_node_alpha_us = 5;           // per-message latency of a ring step inside a node
  double inter_node_alpha_us = 10;          // ... across nodes
  double sustained_fraction = 0.5;          // achieved / peak for the model's GEMMs (BLAS, cuBLAS)
  double small_gemm_width = 0;              // per-rank GEMM width at which efficiency halves; 0: off
  double attention_fraction = 0;            // achieved / peak for the attention products (Q K^T, A V)
                                            // of strata's attention kernel; 0: as sustained_fraction
  double elementwise_fraction = 1.0;        // achieved / memory_bandwidth of element-wise kernels and
                                            // the optimizer step
  double overlap_efficiency = 1.0;          // share of the overlap window that hides DP traffic
  int oversubscribe = 1;                    // CPU: ranks sharing each slot (a waiting rank yields its
                                            // core to the others); figures above are per slot
  double price_per_gpu_hour = 0;            // $ per accelerator-hour
  double power_watts = 0;                   // per accelerator, for energy estimates

  // Constants that are assumptions, not validated against measurements: their uncertainty as
  // [low, high]. Empty: the constant rests on the data named in `calibration`. The planner prints
  // every figure that depends on an assumption at both ends of its range (plan/uncertainty.hpp).
  std::vector<double> sustained_fraction_range;
  std::vector<double> small_gemm_width_range;
  std::vector<double> attention_fraction_range;
  std::vector<double> elementwise_fraction_range;
  std::vector<double> overlap_efficiency_range;
  std::string calibration;  // what the calibrated constants were fitted and validated on

  double peak_tflops() const { return precision == Precision::bf16 ? peak_tflops_bf16 : peak_tflops_fp32; }
  // The attention products' efficiency (attention_fraction, or sustained_fraction when 0).
  double attention_efficiency() const {
    return attention_fraction > 0 ? attention_fraction : sustained_fraction;
  }
};

// Load and validate a cluster file. Throws strata::Error naming the file, line and key.
ClusterConfig load_cluster_config(const std::string& path);

// Range and cross-field checks (peak for the chosen precision set, fractions in range).
void validate(const ClusterConfig& cluster, const std::string& origin = "");

const char* to_string(Precision v);

// A config named by path or by short name: `name_or_path` if it is a file, else
// configs/<folder>/<name>.yaml under the current directory or the folders above the running
// executable, else the unique file there whose name starts with `name` ("h100" ->
// h100_sxm_80gb.yaml). `what` ("cluster", "model") words the error, which lists the known names.
std::string find_named_config(const std::string& name_or_path, const std::string& folder,
                              const std::string& what);

// The short names available in configs/<folder>/ (sorted), for messages and --help.
std::vector<std::string> named_configs(const std::string& folder);

}  // namespace strata::config
