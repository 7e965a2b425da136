// Published training measurements on A100 GPUs, with the layouts their authors published, as
// calibration runs for the planner (plan/calibrate.hpp). Used by test_validation.cpp; the tables
// and their sources are in docs/planner-validation.md secs. 1-2.
//
// Megatron-LM 2021 (the calibration set of a100_sxm_80gb.yaml's sustained_fraction):
//   Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
//   Megatron-LM", table 1: GPT models (vocabulary 51,200, sequence 2,048), achieved TFLOP/s per
//   GPU counted with their eq. 3 (full recomputation included). The layouts (micro-batch size,
//   virtual stages, data-parallel implementation) are those of the paper's own scripts:
//   NVIDIA/Megatron-LM examples/academic_paper_scripts/sc21/run_table_1.sh (MBS,
//   --num-layers-per-virtual-pipeline-stage, --DDP-impl: torch overlaps the gradient all-reduce
//   with the backward, local does not); all runs fp16 with full ("uniform") recomputation.
//
// Korthikanti et al. 2022 (a validation set, never fitted): "Reducing Activation Recomputation in
//   Large Transformer Models", sequence parallelism + selective recomputation, data-parallel
//   size 1. Model FLOPs utilisation 41.5 / 51.4 / 56.0 / 56.3% for 22B / 175B / 530B / 1T as
//   NVIDIA/Megatron-LM's README states it (commit 2e90a342f5, May 2022, "Update numbers in
//   README"). The model shapes, GPU counts and batch sizes are the paper's table 3 as we recall
//   it; the micro-batch sizes (4 for 22B, 1 otherwise) and the plain (non-interleaved) 1F1B
//   schedule are our reading and were not re-checked against the paper (docs: "unsure").
#pragma once
#include <string>
#include <vector>

#include "plan_test_util.hpp"
#include "strata/plan/calibrate.hpp"
#include "strata/plan/flops.hpp"

namespace strata::plan::test {

struct PublishedRun {
  const char* name;
  int heads, hidden, layers, tp, pp, gpus, batch, micro_batch, virtual_stages;
  bool overlap_grad_reduce;  // torch DDP (overlapped) or Megatron's local DDP (after the backward)
  Recompute recompute;
  bool sequence_parallel;
  double published;  // Megatron 2021: TFLOP/s per GPU (eq. 3); Korthikanti 2022: MFU
};

inline const std::vector<PublishedRun>& megatron_2021() {
  static const std::vector<PublishedRun> runs = {
      {"1.7B", 24, 2304, 24, 1, 1, 32, 512, 16, 1, true, Recompute::full, false, 137},
      {"3.6B", 32, 3072, 30, 2, 1, 64, 512, 16, 1, true, Recompute::full, false, 138},
      {"7.5B", 32, 4096, 36, 4, 1, 128, 512, 16, 1, true, Recompute::full, false, 142},
      {"18.4B", 48, 6144, 40, 8, 1, 256, 1024, 8, 1, true, Recompute::full, false, 135},
      {"39.1B", 64, 8192, 48, 8, 2, 512, 1536, 4, 1, false, Recompute::full, false, 138},
      {"76.1B", 80, 10240, 60, 8, 4, 1024, 1792, 2, 3, false, Recompute::full, false, 140},
      {"145.6B", 96, 12288, 80, 8, 8, 1536, 2304, 2, 2, false, Recompute::full, false, 148},
      {"310.1B", 128, 16384, 96, 8, 16, 1920, 2160, 1, 2, false, Recompute::full, false, 155},
      {"529.6B", 128, 20480, 105, 8, 35, 2520, 2520, 1, 3, false, Recompute::full, false, 163},
      {"1008.0B", 160, 25600, 128, 8, 64, 3072, 3072, 1, 1, false, Recompute::full, false, 163},
  };
  return runs;
}

inline const std::vector<PublishedRun>& korthikanti_2022() {
  static const std::vector<PublishedRun> runs = {
      {"22B", 64, 6144, 48, 8, 1, 8, 4, 4, 1, true, Recompute::selective, true, 0.415},
      {"175B", 96, 12288, 96, 8, 8, 64, 64, 1, 1, true, Recompute::selective, true, 0.514},
      {"530B", 128, 20480, 105, 8, 35, 280, 280, 1, 1, true, Recompute::selective, true, 0.560},
      {"1T", 160, 25600, 128, 8, 64, 512, 512, 1, 1, true, Recompute::selective, true, 0.563},
  };
  return runs;
}

// A published run as a calibration run: Megatron-LM's software (Framework::megatron_lm), the
// published layout, and the step time its published throughput implies.
//   Megatron 2021: step = hardware FLOPs of the step (eq. 3) / (TFLOP/s per GPU x GPUs).
//   Korthikanti 2022: step = model FLOPs of the step / (MFU x 312 TFLOP/s x GPUs).
inline CalibrationRun as_calibration_run(const PublishedRun& p, bool mfu) {
  CalibrationRun run;
  run.name = p.name;
  run.workload = Workload::of(gpt(p.layers, p.hidden, p.heads, 51200, 2048), 2048);
  Layout& l = run.layout;
  l.tp = p.tp, l.pp = p.pp, l.dp = p.gpus / (p.tp * p.pp), l.vpp = p.virtual_stages;
  l.micro_batch = p.micro_batch, l.micro_batches = p.batch / (p.micro_batch * l.dp);
  l.zero = 0, l.sequence_parallel = p.sequence_parallel, l.recompute = p.recompute;
  l.framework = Framework::megatron_lm, l.overlap_grad_reduce = p.overlap_grad_reduce;
  run.ranks_per_node = 8;
  const FlopsPerToken f = flops_per_token(run.workload.model, run.workload.counts, 2048, p.recompute);
  const double tokens = double(p.batch) * 2048;
  run.measured_s = mfu ? f.model * tokens / (p.published * 312e12 * p.gpus)
                       : f.hardware * tokens / (p.published * 1e12 * p.gpus);
  run.samples_s = {run.measured_s};
  return run;
}

inline std::vector<CalibrationRun> as_calibration_runs(const std::vector<PublishedRun>& runs, bool mfu) {
  std::vector<CalibrationRun> out;
  for (const PublishedRun& p : runs) out.push_back(as_calibration_run(p, mfu));
  return out;
}

}  // namespace strata::plan::test
