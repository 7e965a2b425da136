// Predictions next to measurements, out of sample (docs/planner-validation.md has the tables).
// Each constant is fitted on one named set of runs and validated on runs the fit never saw:
//   - a100_sxm_80gb.yaml's sustained_fraction is the fit to Megatron-LM's 2021 weak-scaling runs
//     at their published layouts (checked here: the file holds what the fit gives), validated on
//     Korthikanti et al. 2022's runs (sequence parallelism, selective recomputation);
//   - local.yaml's efficiencies are the fit to the calibration runs kept under
//     benchmarks/results/local-calibration (1-, 2- and 4-rank runs on this machine), validated on
//     the 8-rank layouts kept there;
//   - strata's planned memory against its own runs (exact plans, RSS within stated bounds).
// Tolerances are stated next to each test with their reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "plan_test_util.hpp"
#include "published_runs.hpp"
#include "strata/plan/calibrate.hpp"
#include "strata/plan/memory.hpp"
#include "strata/plan/search.hpp"
#include "strata/plan/step_time.hpp"

namespace strata::plan {
namespace {

// a100_sxm_80gb.yaml's sustained_fraction is the least-squares fit (relative errors) to Megatron-LM
// 2021's ten runs at their published layouts, with the file's other constants as they are. The
// in-sample residuals and leave-one-out errors are printed; they are not the validation.
TEST(PlanValidation, A100SustainedFractionIsTheFitToMegatron2021) {
  const config::ClusterConfig a100 = test::cluster("a100_sxm_80gb");
  const Calibration fit =
      calibrate(a100, test::as_calibration_runs(test::megatron_2021(), false), {"sustained_fraction"});
  std::printf("%s", calibration_report(fit).c_str());
  EXPECT_NEAR(a100.sustained_fraction, fit.after[0], 0.005)
      << "refit a100_sxm_80gb.yaml: the fit gives " << fit.after[0];
  // The A100 40GB file states the same stack on the same GPU.
  EXPECT_EQ(test::cluster("a100_sxm_40gb").sustained_fraction, a100.sustained_fraction);
}

// Out of sample: Korthikanti et al. 2022's four runs (MFU published) with the calibrated A100
// file. Tolerance 25% per run: the fit's own leave-one-out errors reach 13%, and these runs use
// a newer stack (2022: sequence parallelism, selective recomputation, newer kernels) than the 2021
// runs the constant was fitted on; their schedule details are our reading of the paper
// (published_runs.hpp). Mean absolute error within 15%.
TEST(PlanValidation, A100OutOfSampleOnKorthikanti2022) {
  const config::ClusterConfig a100 = test::cluster("a100_sxm_80gb");
  double sum = 0;
  const auto& published = test::korthikanti_2022();
  const auto runs = test::as_calibration_runs(published, true);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const CalibrationRun& run = runs[i];
    const double predicted = predict_run_s(run, a100);
    const double err = predicted / run.measured_s - 1;  // of the step time
    sum += std::fabs(err);
    std::printf(
        "  %-5s %-32s published MFU %4.1f%% (step %6.2f s)  predicted %4.1f%% (%6.2f s)  step %+5.1f%%\n",
        run.name.c_str(), to_string(run.layout).c_str(), 100 * published[i].published, run.measured_s,
        100 * published[i].published * run.measured_s / predicted, predicted, 100 * err);
    EXPECT_LT(std::fabs(err), 0.25) << run.name;
  }
  std::printf("  mean absolute error %.1f%%\n", 100 * sum / double(runs.size()));
  EXPECT_LT(sum / double(runs.size()), 0.15);
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
  struct Run {
    const char* model;
    int batch, seq;
    bool full;
    double measured_mib;
  };
  const Run runs[] = {
      {"tiny_gpt", 8, 32, false, 32.0},     {"llama_tiny", 8, 256, false, 300.3},
      {"llama_tiny", 8, 256, true, 165.2},  {"gpt2_124m", 4, 256, false, 2918.6},
      {"gpt2_124m", 4, 256, true, 2291.4},  {"gpt2_124m", 2, 1024, false, 4763.0},
      {"gpt2_350m", 1, 512, false, 6756.4}, {"llama_tiny", 16, 256, false, 522.4},
  };
  const config::ClusterConfig local = test::cluster("local");
  for (const Run& run : runs) {
    const config::ModelConfig m = test::model(run.model);
    Layout l;
    l.precision = config::Precision::fp32, l.micro_batch = run.batch, l.zero = 0;
    l.recompute = run.full ? Recompute::full : Recompute::none;
    const double predicted = predict_memory(Workload::of(m, run.seq), l, local).total() / (1024.0 * 1024.0);
    const double err = predicted / run.measured_mib - 1.0;
    std::printf("  %-10s b%-2d T%-4d %-5s measured %7.1f MiB  predicted %7.1f MiB  %+5.1f%%\n", run.model,
                run.batch, run.seq, run.full ? "full" : "none", run.measured_mib, predicted, 100 * err);
    EXPECT_LT(std::fabs(predicted - run.measured_mib), std::max(0.03 * run.measured_mib, 2.0)) << run.model;
  }
}

}  // namespace
}  // namespace strata::plan

namespace strata::plan {
namespace {

// strata's own 8-rank runs on this machine (benchmarks/layouts_vs_plan.sh: configs/bench_layouts.yaml,
// 16 sequences of 128 tokens per step in micro-batches of 2, 8 ranks on 2 cores, one BLAS thread
// each). Rank 0 (stage 0, TP rank 0, DP rank 0) logs its planned bytes and reports its peak RSS;
// the planner predicts stage 0 (predict_stage_memory) on local.yaml shared by 8 ranks
// (share_node). Planned bytes must agree to within the log's 0.01 MiB
// rounding (the planner's trainer_planned() is the log's sum). Rank 0's predicted total adds
// the ZeRO-1 gradient shard, the step batch and local.yaml's 0.03 GiB process baseline: within
// 5% of the peak RSS without data parallelism; with dp > 1 the RSS is 10-30% higher (MPI's
// temporary buffers of the non-blocking DP collectives, which no plan holds; sec. 5), so those
// rows are only held to "below the RSS, within 35%". (Their step times: the out-of-sample test
// of local.yaml below.) The planned totals of the last three rows are the one-engine trainer's
// log lines (its per-micro-batch loss staging and the head's targets buffer add 0.01-0.03 MiB);
// RSS are the runs above.
struct EightRankRun {
  const char* layout;  // planner form (gpipe: GPipe schedule; v2: interleaved 1F1B)
  double planned_mib, rss_mib;
};
constexpr EightRankRun kEightRank[] = {
    {"tp1-pp1-dp8-mb2-z0", 151.27, 210.0},      {"tp1-pp1-dp8-mb2-z1", 105.37, 196.3},
    {"tp2-pp1-dp4-mb2-z1-sp", 58.96, 121.1},    {"tp1-pp2-dp4-mb2-z1", 80.04, 144.3},
    {"tp1-pp2-dp4-mb2-z1-gpipe", 80.04, 144.2}, {"tp1-pp2-dp4-v2-mb2-z1", 85.60, 149.7},
    {"tp2-pp2-dp2-mb2-z1-sp", 46.45, 89.4},     {"tp8-pp1-dp1-mb2-z0-sp", 24.04, 56.4},
    {"tp1-pp8-dp1-mb2-z0", 68.18, 101.7},
};

TEST(PlanValidation, StrataEightRankLayoutsOnThisMachine) {
  const Workload w = Workload::of(test::model("bench_layouts"), 128);
  const config::ClusterConfig c = share_node(test::cluster("local"), 8);
  const double MiB = 1024.0 * 1024.0;
  for (const EightRankRun& run : kEightRank) {
    const Layout l = parse_layout(run.layout, 8, 16, config::Precision::fp32);
    const MemoryBreakdown s0 = predict_stage_memory(w, l, c, 0);
    config::ParallelConfig par;
    par.tp = l.tp, par.pp = l.pp, par.dp = l.dp, par.virtual_stages = l.vpp,
    par.micro_batch_size = l.micro_batch;
    par.sequence_parallel = l.sequence_parallel, par.zero_stage = l.zero;
    const auto kind = l.vpp > 1 ? config::PipelineSchedule::interleaved_1f1b
                      : l.gpipe ? config::PipelineSchedule::gpipe
                                : config::PipelineSchedule::one_f_one_b;
    const CpuStagePlan p = strata_cpu_stage_plan(w.model, par, kind, l.micro_batches, w.seq_len, 0);
    const double planned = p.trainer_planned() / MiB, total = s0.total() / MiB;
    std::printf(
        "  %-26s planned %7.2f MiB (log %7.2f, %+5.2f%%)  rank 0 total %6.1f MiB (RSS %6.1f, %+5.1f%%)\n",
        run.layout, planned, run.planned_mib, 100 * (planned / run.planned_mib - 1), total, run.rss_mib,
        100 * (total / run.rss_mib - 1));
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

namespace strata::plan {
namespace {

namespace fs = std::filesystem;

// The run folders of benchmarks/calibrate_local.sh kept under benchmarks/results, by prefix,
// repeats merged. Runs whose three repeats disagree by more than 30% are not reproducible on this
// shared machine and are left out (strata plan --calibrate --max-spread 0.3): cal-r2-tp2, 50%
// (the next worst: 21%), where with one rank per core Open MPI busy-polls and the spinning of one
// rank while its partner waited for a core entered its CPU time (docs sec. 4).
std::vector<CalibrationRun> kept_runs(const char* prefix, const config::ClusterConfig& cluster,
                                      std::vector<std::string>* dropped = nullptr) {
  const fs::path root = fs::path(STRATA_SOURCE_DIR) / "benchmarks" / "results" / "local-calibration";
  std::vector<std::string> dirs;
  for (const auto& rep : fs::directory_iterator(root))
    if (rep.is_directory() && rep.path().filename().string().starts_with("rep"))
      for (const auto& run : fs::directory_iterator(rep.path()))
        if (run.is_directory() && run.path().filename().string().starts_with(prefix))
          dirs.push_back(run.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<CalibrationRun> runs;
  for (const std::string& d : dirs) runs.push_back(read_calibration_run(d, cluster, TimeBase::cpu));
  return reproducible_runs(merge_repeats(runs), 0.30, dropped);
}

const std::vector<std::string> kLocalKeys = {"sustained_fraction", "small_gemm_width", "attention_fraction",
                                             "intra_node_gb_per_s", "intra_node_alpha_us"};

// local.yaml's efficiencies are the fit (strata plan --calibrate, CPU time) to the calibration
// runs kept in benchmarks/results/local-calibration (cal-*: 1-, 2- and 4-rank runs), to the
// rounding of the file's 4 significant digits.
TEST(PlanValidation, LocalIsTheFitToItsCalibrationRuns) {
  const config::ClusterConfig local = test::cluster("local");
  std::vector<std::string> dropped;
  const std::vector<CalibrationRun> runs = kept_runs("cal-", local, &dropped);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_TRUE(dropped[0].starts_with("cal-r2-tp2")) << dropped[0];
  ASSERT_GE(runs.size(), kLocalKeys.size() + 2);
  const Calibration fit = calibrate(local, runs, kLocalKeys);
  std::printf("%s", calibration_report(fit).c_str());
  for (std::size_t k = 0; k < kLocalKeys.size(); ++k)
    EXPECT_NEAR(fit.before[k] / fit.after[k], 1.0, 0.002)
        << kLocalKeys[k] << ": the fit gives " << fit.after[k];
}

// Out of sample: the 8-rank layouts (val-*: 8 ranks on the 2 cores, never seen by the fit),
// measured as the CPU time of all ranks per step over the 2 cores, predicted on local.yaml shared
// by 8 ranks. The tolerance of each layout was fixed before the 8-rank runs were compared: twice
// the largest leave-one-out error of the calibration runs of its kind - with tensor parallelism
// or without - rounded up to a multiple of 5%, at least 20%. (The 8-rank runs add what no
// calibration run has: 4 ranks per core.) One layout misses: tp8, whose 8-way tensor-parallel
// collectives the model charges 4x the fitted latency per ring step (each step waiting for the
// partner's core, share_node) and predicts ~3x too slow; the latency scaling is the model's
// assumption that these runs refute (docs sec. 4). It is asserted to miss, so that a model change
// that fixes it also updates the doc.
TEST(PlanValidation, LocalEightRankLayoutsOutOfSample) {
  const config::ClusterConfig local = test::cluster("local");
  const Calibration cal = calibrate(local, kept_runs("cal-", local), kLocalKeys);
  double loo_tp = 0, loo_other = 0;
  for (const CalibrationRow& r : cal.rows) {
    double& worst = r.name.find("-tp") != std::string::npos ? loo_tp : loo_other;
    worst = std::max(worst, std::fabs(r.loo_error()));
  }
  const auto tolerance = [](double loo) { return std::max(0.20, std::ceil(2 * loo * 20 - 1e-9) / 20); };
  std::printf("  tolerance: layouts with TP %.0f%% (calibration LOO max %.1f%%), without %.0f%% (%.1f%%)\n",
              100 * tolerance(loo_tp), 100 * loo_tp, 100 * tolerance(loo_other), 100 * loo_other);
  const std::vector<CalibrationRun> runs = kept_runs("val-", local);
  ASSERT_EQ(runs.size(), 9u);
  double sum = 0;
  for (const CalibrationRun& run : runs) {
    const double predicted = predict_run_s(run, local);
    const double err = predicted / run.measured_s - 1;
    const double tol = tolerance(run.layout.tp > 1 ? loo_tp : loo_other);
    sum += std::fabs(err);
    std::printf(
        "  %-26s measured %6.0f ms (x%d, spread %4.1f%%)  predicted %6.0f ms  %+6.1f%%  (tolerance %.0f%%)\n",
        to_string(run.layout).c_str(), 1e3 * run.measured_s, run.repeats, 100 * run.spread, 1e3 * predicted,
        100 * err, 100 * tol);
    if (run.layout.tp == 8) {
      EXPECT_GT(err, 1.5) << run.name << ": now within " << 100 * err
                          << "%: update docs/planner-validation.md sec. 4";
      continue;
    }
    EXPECT_LT(std::fabs(err), tol) << run.name;
  }
  std::printf("  mean absolute error %.1f%% (all 9)\n", 100 * sum / double(runs.size()));
}

}  // namespace
}  // namespace strata::plan
