// Predictions next to published measurements (docs/planner-validation.md has the tables):
//   - Megatron-LM's 2021 weak-scaling runs (Narayanan et al. 2021, table 1): A100 80GB (Selene),
//     GPT models with vocab 51200, sequence 2048, full recomputation, no sequence parallelism and
//     no distributed optimizer (neither existed yet), TFLOP/s per GPU counted with eq. 3;
//   - the GPU-hours Meta reports for LLaMA-2 (Touvron et al. 2023, table 2).
// The tolerances are the model's stated accuracy: 15% on Megatron's per-GPU throughput, 25% on
// LLaMA-2's GPU-hours (Meta's stack, batch and layout are not published in detail).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "plan_test_util.hpp"
#include "strata/plan/memory.hpp"
#include "strata/plan/search.hpp"
#include "strata/plan/step_time.hpp"

namespace strata::plan {
namespace {

struct MegatronRun {
  double billions;
  int heads, hidden, layers, tp, pp, gpus, batch;
  double tflops;  // achieved per GPU, published
};

// Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
// Megatron-LM", table 1.
const MegatronRun kMegatron[] = {
    {1.7, 24, 2304, 24, 1, 1, 32, 512, 137},       {3.6, 32, 3072, 30, 2, 1, 64, 512, 138},
    {7.5, 32, 4096, 36, 4, 1, 128, 512, 142},      {18.4, 48, 6144, 40, 8, 1, 256, 1024, 135},
    {39.1, 64, 8192, 48, 8, 2, 512, 1536, 138},    {76.1, 80, 10240, 60, 8, 4, 1024, 1792, 140},
    {145.6, 96, 12288, 80, 8, 8, 1536, 2304, 148}, {310.1, 128, 16384, 96, 8, 16, 1920, 2160, 155},
    {529.6, 128, 20480, 105, 8, 35, 2520, 2520, 163}, {1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 163},
};

// The fastest fitting layout with Megatron's tp and pp and 2021's features.
Candidate megatron_prediction(const MegatronRun& run) {
  PlanRequest r;
  config::ModelConfig m = test::gpt(run.layers, run.hidden, run.heads, 51200, 2048);
  m.name = "gpt_" + std::to_string(run.billions);
  r.workload = Workload::of(m, 2048);
  r.cluster = test::cluster("a100_sxm_80gb");
  // Megatron-LM's 2021 data parallelism (--DDP-impl local) all-reduced the gradient buffer after
  // the backward, with no overlap (the --overlap-grad-reduce of later versions did not exist).
  r.cluster.overlap_efficiency = 0;
  r.gpus = run.gpus, r.global_batch = run.batch, r.tokens = 300e9;
  r.recompute = {Recompute::full};
  Candidate best;
  best.time.total = INFINITY;
  for (const Layout& l : enumerate_layouts(r)) {
    if (l.tp != run.tp || l.pp != run.pp || l.sequence_parallel || l.zero != 0) continue;
    const Candidate c = evaluate(r, l);
    if (c.fits && c.time.total < best.time.total) best = c;
  }
  return best;
}

TEST(PlanValidation, MegatronWeakScalingWithinFifteenPercent) {
  double sum_abs = 0;
  for (const MegatronRun& run : kMegatron) {
    const Candidate c = megatron_prediction(run);
    ASSERT_TRUE(std::isfinite(c.time.total)) << run.billions << "B: no layout fits";
    const double err = c.time.hardware_tflops_per_gpu / run.tflops - 1.0;
    sum_abs += std::fabs(err);
    std::printf("  %7.1fB  %-34s  published %5.0f  predicted %6.1f TFLOP/s  %+5.1f%%\n", run.billions,
                to_string(c.layout).c_str(), run.tflops, c.time.hardware_tflops_per_gpu, 100 * err);
    EXPECT_LT(std::fabs(err), 0.15) << run.billions << "B";
  }
  std::printf("  mean absolute error %.1f%%\n", 100 * sum_abs / std::size(kMegatron));
}

// Meta: 184,320 (7B), 368,640 (13B) and 1,720,320 (70B) A100-80GB GPU-hours for 2T tokens at a
// 4M-token batch (Touvron et al. 2023, table 2 and sec. 2.2).
TEST(PlanValidation, Llama2GpuHoursWithinTwentyFivePercent) {
  const std::pair<const char*, double> runs[] = {{"llama2_7b", 184320}, {"llama2_13b", 368640}, {"llama2_70b", 1720320}};
  for (const auto& [name, published] : runs) {
    PlanRequest r;
    r.workload = Workload::of(test::model(name), 4096);
    r.cluster = test::cluster("a100_sxm_80gb");
    r.gpus = 2048, r.global_batch = 1024, r.tokens = 2e12;
    const PlanResult res = search_layouts(r);
    const Candidate& best = res.fitting.front();
    const double err = best.run.gpu_hours / published - 1.0;
    std::printf("  %-10s  %-34s  published %9.0f  predicted %9.0f GPU-hours  %+5.1f%%  (MFU %.1f%%)\n", name,
                to_string(best.layout).c_str(), published, best.run.gpu_hours, 100 * err, 100 * best.time.mfu);
    EXPECT_LT(std::fabs(err), 0.25) << name;
  }
}

}  // namespace
}  // namespace strata::plan

namespace strata::plan {
namespace {

// Peak resident memory (mem_bytes in metrics.jsonl, the process's VmHWM) of single-rank strata
// runs on this machine (2 cores, fp32, OpenBLAS), measured for docs/planner-validation.md with
//   strata train --config configs/test_tiny.yaml --set model=configs/models/M.yaml
//     --set parallel.micro_batch_size=B --set train.seq_len=T [--set model.recompute=full]
// Prediction: the local cluster (fp32: strata's own memory plan + the 0.03 GiB process baseline).
// Tolerance 3% or 2 MiB, whichever is larger (the baseline varies by a few MiB with libraries'
// buffers and the corpus size, which dominates the tiny model).
TEST(PlanValidation, StrataPeakMemoryOnThisMachineWithinThreePercent) {
  struct Run { const char* model; int batch, seq; bool full; double measured_mib; };
  const Run runs[] = {
      {"tiny_gpt", 8, 32, false, 32.0},           {"llama_tiny", 8, 256, false, 300.3},
      {"llama_tiny", 8, 256, true, 165.2},        {"gpt2_124m", 4, 256, false, 2918.6},
      {"gpt2_124m", 4, 256, true, 2291.4},        {"gpt2_124m", 2, 1024, false, 4763.0},
      {"gpt2_350m", 1, 512, false, 6756.4},       {"llama_tiny", 16, 256, false, 522.4},
  };
  const config::ClusterConfig local = test::cluster("local");
  for (const Run& run : runs) {
    const config::ModelConfig m = test::model(run.model);
    Layout l;
    l.precision = config::Precision::fp32, l.micro_batch = run.batch, l.zero = 0;
    l.recompute = run.full ? Recompute::full : Recompute::none;
    const double predicted = predict_memory(Workload::of(m, run.seq), l, local).total() / (1024.0 * 1024.0);
    const double err = predicted / run.measured_mib - 1.0;
    std::printf("  %-10s b%-2d T%-4d %-5s measured %7.1f MiB  predicted %7.1f MiB  %+5.1f%%\n", run.model, run.batch,
                run.seq, run.full ? "full" : "none", run.measured_mib, predicted, 100 * err);
    EXPECT_LT(std::fabs(predicted - run.measured_mib), std::max(0.03 * run.measured_mib, 2.0)) << run.model;
  }
}

}  // namespace
}  // namespace strata::plan

namespace strata::plan {
namespace {

// Step time of single-rank strata runs on this machine with one BLAS thread, measured as CPU time
// per step (user + system time of a 3- or 4-step run minus a 1-step run, so start-up cancels;
// with one thread CPU time is the step's time on an idle core — the machine is shared, and
// wall-clock steps under other jobs' load varied 4x). Prediction: local.yaml with its peak halved
// for one thread (0.116 TFLOP/s); local's sustained_fraction 0.23 was fitted to these five runs
// (one parameter), so this states the model's residual error, 20% per run at most.
TEST(PlanValidation, StrataStepTimeOnThisMachineWithinTwentyPercent) {
  struct Run { const char* model; int batch, seq; bool full; double measured_s; };
  const Run runs[] = {
      {"llama_tiny", 8, 256, false, 1.662}, {"llama_tiny", 8, 256, true, 1.978},
      {"gpt2_124m", 4, 256, false, 34.90},  {"gpt2_124m", 4, 256, true, 40.66},
      {"gpt2_124m", 2, 1024, false, 71.37},
  };
  config::ClusterConfig one_thread = test::cluster("local");
  one_thread.peak_tflops_fp32 /= 2;
  double sum_abs = 0;
  for (const Run& run : runs) {
    const Workload w = Workload::of(test::model(run.model), run.seq);
    Layout l;
    l.precision = config::Precision::fp32, l.micro_batch = run.batch, l.zero = 0;
    l.recompute = run.full ? Recompute::full : Recompute::none;
    const double predicted = predict_step_time(w, l, one_thread, predict_memory(w, l, one_thread)).total;
    const double err = predicted / run.measured_s - 1.0;
    sum_abs += std::fabs(err);
    std::printf("  %-10s b%-2d T%-4d %-5s measured %6.2f s  predicted %6.2f s  %+5.1f%%\n", run.model, run.batch,
                run.seq, run.full ? "full" : "none", run.measured_s, predicted, 100 * err);
    EXPECT_LT(std::fabs(err), 0.20) << run.model;
  }
  std::printf("  mean absolute error %.1f%%\n", 100 * sum_abs / std::size(runs));
}

}  // namespace
}  // namespace strata::plan

namespace strata::plan {
namespace {

// strata's own 8-rank runs on this machine (benchmarks/layouts_vs_plan.sh: configs/bench_layouts.yaml,
// 16 sequences of 128 tokens per step in micro-batches of 2, 8 ranks on 2 cores, one BLAS thread
// each). Rank 0 (stage 0, TP rank 0, DP rank 0) logs its planned bytes and reports its peak RSS;
// the planner predicts stage 0 (predict_stage_memory) on local_8ranks.yaml, whose figures are
// local.yaml's shared by 8 ranks. Planned bytes must agree to within the log's 0.01 MiB
// rounding (the planner's trainer_planned() is the log's sum). Rank 0's predicted total adds
// the ZeRO-1 gradient shard, the step batch and local.yaml's 0.03 GiB process baseline: within
// 5% of the peak RSS without data parallelism; with dp > 1 the RSS is 10-30% higher (MPI's
// temporary buffers of the non-blocking DP collectives, which no plan holds; sec. 5), so those
// rows are only held to "below the RSS, within 35%". Step times are printed, not tested: they
// come from an oversubscribed machine (8 ranks on 2 cores), measured with no other job running
// (load below 1.5 at the start); the planner over-predicts them 1.5-7x (sec. 5.2).
// The planned totals of the last three rows are the one-engine trainer's log lines (its
// per-micro-batch loss staging and the head's targets buffer add 0.01-0.03 MiB); RSS and step
// times are the runs above.
struct EightRankRun {
  const char* layout;  // planner form (gpipe: GPipe schedule; v2: interleaved 1F1B)
  double planned_mib, rss_mib, step_ms;
};
constexpr EightRankRun kEightRank[] = {
    {"tp1-pp1-dp8-mb2-z0", 151.27, 210.0, 768},        {"tp1-pp1-dp8-mb2-z1", 105.37, 196.3, 587},
    {"tp2-pp1-dp4-mb2-z1-sp", 58.96, 121.1, 578},       {"tp1-pp2-dp4-mb2-z1", 80.04, 144.3, 674},
    {"tp1-pp2-dp4-mb2-z1-gpipe", 80.04, 144.2, 593},    {"tp1-pp2-dp4-v2-mb2-z1", 85.60, 149.7, 654},
    {"tp2-pp2-dp2-mb2-z1-sp", 46.45, 89.4, 673},        {"tp8-pp1-dp1-mb2-z0-sp", 24.04, 56.4, 1210},
    {"tp1-pp8-dp1-mb2-z0", 68.18, 101.7, 720},
};

TEST(PlanValidation, StrataEightRankLayoutsOnThisMachine) {
  const Workload w = Workload::of(test::model("bench_layouts"), 128);
  const config::ClusterConfig c = test::cluster("local_8ranks");
  const double MiB = 1024.0 * 1024.0;
  for (const EightRankRun& run : kEightRank) {
    const Layout l = parse_layout(run.layout, 8, 16, config::Precision::fp32);
    const MemoryBreakdown s0 = predict_stage_memory(w, l, c, 0);
    config::ParallelConfig par;
    par.tp = l.tp, par.pp = l.pp, par.dp = l.dp, par.virtual_stages = l.vpp, par.micro_batch_size = l.micro_batch;
    par.sequence_parallel = l.sequence_parallel, par.zero_stage = l.zero;
    const auto kind = l.vpp > 1 ? config::PipelineSchedule::interleaved_1f1b
                      : l.gpipe ? config::PipelineSchedule::gpipe
                                : config::PipelineSchedule::one_f_one_b;
    const CpuStagePlan p = strata_cpu_stage_plan(w.model, par, kind, l.micro_batches, w.seq_len, 0);
    const double planned = p.trainer_planned() / MiB, total = s0.total() / MiB;
    const StepTime t = predict_step_time(w, l, c, predict_memory(w, l, c));
    std::printf("  %-26s planned %7.2f MiB (log %7.2f, %+5.2f%%)  rank 0 total %6.1f MiB (RSS %6.1f, %+5.1f%%)  "
                "step %6.0f ms (measured %6.0f, %+6.1f%%)\n",
                run.layout, planned, run.planned_mib, 100 * (planned / run.planned_mib - 1), total, run.rss_mib,
                100 * (total / run.rss_mib - 1), 1e3 * t.total, run.step_ms, 100 * (1e3 * t.total / run.step_ms - 1));
    EXPECT_NEAR(planned, run.planned_mib, 0.011) << run.layout;
    if (l.dp == 1) {
      EXPECT_LT(std::fabs(total / run.rss_mib - 1), 0.05) << run.layout;
    } else {
      EXPECT_LT(total, run.rss_mib) << run.layout;
      EXPECT_LT(1 - total / run.rss_mib, 0.35) << run.layout;
    }
  }
}

}  // namespace
}  // namespace strata::plan
