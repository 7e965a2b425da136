// The trainer loop (one rank for now): build the components from their configs, plan and
// allocate everything, then run steps that allocate nothing:
//   for each micro-batch: next batch from the async loader -> forward/backward (gradients accumulate)
//   global gradient norm -> clip factor -> AdamW with the scheduled learning rate
//   metrics: one JSON object per step in <out_dir>/metrics.jsonl, a log line every
//   train.log_interval steps.
#pragma once
#include <cstddef>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::train {

struct StepMetrics {
  long step = 0;
  double loss = 0;        // mean token loss of the global batch
  double lr = 0;
  double grad_norm = 0;   // before clipping
  double tokens_per_s = 0;
  double step_ms = 0;
  double tflops = 0;      // achieved model TFLOP/s of this rank (6N + attention rule)
  double mfu = 0;         // tflops / hardware.peak_tflops
  std::size_t mem_bytes = 0;  // peak resident memory of the process
  double data_wait_ms = 0;    // time the step waited for its batches (0 when prefetch keeps up)
};

struct TrainSummary {
  std::vector<StepMetrics> steps;
  double peak_tflops = 0;      // the peak MFU was measured against
  std::size_t planned_bytes = 0;  // parameters + optimizer + activations, as planned
  double valid_loss = -1;         // mean token loss on the held-out windows at the end; -1: none
};

TrainSummary run_training(const config::JobConfig& job);

}  // namespace strata::train
