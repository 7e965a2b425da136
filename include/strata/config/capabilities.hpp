// What each backend runs: one statement, consulted by config validation (validate()), by
// `strata plan`'s layout search, and by `strata train --dry-run`, which the Slurm launch
// scripts run before starting the job — so nothing shipped or recommended is refused at launch
// (DESIGN.md invariant 8). Since the engine is written once over the backend (pipeline,
// virtual stages, tensor and sequence parallelism, ZeRO-1, recomputation, masked LM and the
// sequence-length warm-up run on both), the differences are the kernels' own limits.
#pragma once
#include <string>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::config {

struct BackendSupport {
  DeviceKind device;
  const char* name;               // "cpu (fp32)", "cuda (bf16, fp32 master weights)"
  std::vector<int> head_sizes;    // the attention kernels' head sizes; empty: any
  bool grad_reduce_bf16 = false;  // parallel.grad_reduce_dtype: bf16
  int max_zero_stage = 1;
};

const BackendSupport& backend_support(DeviceKind device);

// Every setting the backend of `device` does not run for this model and layout, one line each
// naming the key, its value and what runs instead; empty when it runs. seq_len: the training
// sequence length (sequence parallelism splits micro_batch_size x seq_len over tp).
std::vector<std::string> unsupported(DeviceKind device, const ModelConfig& model,
                                     const ParallelConfig& parallel, int seq_len);
std::vector<std::string> unsupported(const JobConfig& job);

}  // namespace strata::config
