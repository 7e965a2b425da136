// The bad-step guard (train/guard.hpp, docs/checkpoints.md "Bad steps") on one rank: its rules
// as a pure function, and in training runs with bad steps injected by fault hooks
// (core/faults.hpp): a NaN gradient is skipped with the parameters and Adam moments bitwise
// untouched, a persistent loss spike rolls the run back and skips the data, a resume after the rollback is
// exact, and a rollback that cannot happen is a clear error. (tests/mpi/test_guard.cpp: the
// same on four ranks.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../mpi_singleton.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/train/guard.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

namespace fs = std::filesystem;

// Fault hooks (core/faults.hpp) that make the steps on global batches first..last bad.
FaultHooks bad_batches(FaultHooks::BadBatches::Kind kind, std::uint64_t first, std::uint64_t last) {
  FaultHooks h;
  h.bad_batches.kind = kind;
  h.bad_batches.first = first;
  h.bad_batches.last = last;
  return h;
}

// The unit tests' tiny run with a learning-rate schedule that does not depend on train.steps,
// so runs of different lengths take the same steps; its own folder.
config::JobConfig job(const std::string& name, int steps) {
  config::JobConfig j = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  j.train.steps = steps;
  j.optim.decay_steps = 40;
  j.hardware.peak_tflops = 0.1;  // no peak measurement
  j.eval.windows = 0;
  j.train.log_interval = 1000;
  const fs::path dir = fs::path(testing::TempDir()) / ("strata_guard_" + name);
  fs::remove_all(dir);
  j.train.out_dir = (dir / "run").string();
  j.ckpt.dir = (dir / "ckpt").string();
  return j;
}

std::string step_file(const config::JobConfig& j, long step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08ld.h5", step);
  return (fs::path(j.ckpt.dir) / name).string();
}

std::vector<std::uint64_t> checksums(const std::string& file) {
  std::vector<std::uint64_t> out;
  for (const ckpt::StoredTensor& t : ckpt::list_tensors(file)) out.push_back(t.checksum);
  return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return !a.empty() && a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

config::GuardConfig spike_guard() {
  config::GuardConfig g;
  g.loss_spike_factor = 3;
  g.loss_warmup = 5;
  g.rollback_after = 3;
  return g;
}

}  // namespace

TEST(StepGuard, JudgesNonFiniteAndSpikesAfterTheWarmUpAndKeepsARunningMean) {
  config::GuardConfig cfg;
  cfg.loss_spike_factor = 2;
  cfg.loss_window = 4;
  cfg.loss_warmup = 3;
  cfg.rollback_after = 2;
  train::StepGuard g(cfg);
  EXPECT_EQ(g.judge(NAN, 1.0), train::BadKind::nonfinite);
  EXPECT_EQ(g.judge(1.0, INFINITY), train::BadKind::nonfinite);
  EXPECT_EQ(g.judge(100.0, 1.0), train::BadKind::none);  // no statistic yet: no spike test
  for (double loss : {4.0, 2.0, 3.0}) {
    EXPECT_EQ(g.judge(loss, 1.0), train::BadKind::none);
    g.record(train::BadKind::none, loss);
  }
  EXPECT_DOUBLE_EQ(g.state().loss_mean, 3.0);  // the plain mean of the first window
  EXPECT_DOUBLE_EQ(g.spike_threshold(), 6.0);
  EXPECT_EQ(g.judge(6.0, 1.0), train::BadKind::none);
  EXPECT_EQ(g.judge(6.01, 1.0), train::BadKind::loss_spike);
  g.record(train::BadKind::none, 5.0);  // fourth step: still the plain mean (3.5)
  g.record(train::BadKind::none, 8.5);  // then weight 1/4: 3.5 + (8.5 - 3.5) / 4
  EXPECT_DOUBLE_EQ(g.state().loss_mean, 4.75);
  EXPECT_EQ(g.state().loss_count, 5);
  // Bad steps stay out of the mean; two in a row call for a rollback; a good one ends the run.
  g.record(train::BadKind::loss_spike, 100.0);
  EXPECT_FALSE(g.rollback_due());
  g.record(train::BadKind::nonfinite, NAN);
  EXPECT_TRUE(g.rollback_due());
  EXPECT_DOUBLE_EQ(g.state().loss_mean, 4.75);
  EXPECT_EQ(g.state().skipped_steps, 2);
  // The rollback restores the checkpoint's statistic and keeps the run's counters.
  ckpt::GuardState at_checkpoint;
  at_checkpoint.loss_mean = 3.25;
  at_checkpoint.loss_count = 4;
  EXPECT_TRUE(g.may_roll_back());
  g.rolled_back(at_checkpoint, 32, 56);
  EXPECT_FALSE(g.rollback_due());
  EXPECT_DOUBLE_EQ(g.state().loss_mean, 3.25);
  EXPECT_EQ(g.state().skipped_steps, 2);
  EXPECT_EQ(g.state().rollbacks, 1);
  ASSERT_EQ(g.state().skipped_samples.size(), 1u);
  EXPECT_EQ(g.state().skipped_samples[0], (std::pair<std::uint64_t, std::uint64_t>{32, 56}));
  // The state survives the checkpoint attribute exactly.
  ckpt::GuardState odd = g.state();
  odd.loss_mean = 0.1 + 0.2;
  EXPECT_EQ(ckpt::parse_guard(ckpt::format_guard(odd), "f"), odd);
  EXPECT_THROW(ckpt::parse_guard("loss_mean x\n", "f"), Error);
}

TEST(Guard, NanGradientStepIsSkippedWithParametersAndMomentsBitwiseUnchanged) {
  // Run A stops after step 4; run B trains step 5 on a batch whose gradient is NaN.
  config::JobConfig a = job("nan_a", 4), b = job("nan_b", 5);
  const train::TrainSummary sa = train::run_training(a, MPI_COMM_WORLD);
  train::TrainSummary sb;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 4, 4);  // batch 4: step 5
    sb = train::run_training(b, MPI_COMM_WORLD, &bad);
  }
  ASSERT_EQ(sb.steps.size(), 5u);
  const train::StepMetrics& s5 = sb.steps[4];
  EXPECT_TRUE(s5.skipped);
  EXPECT_EQ(s5.bad, train::BadKind::nonfinite);
  EXPECT_TRUE(std::isnan(s5.grad_norm));
  EXPECT_TRUE(std::isfinite(s5.loss));
  EXPECT_EQ(sb.guard.skipped_steps, 1);
  EXPECT_TRUE(bitwise_equal(sa.final_params, sb.final_params)) << "the skipped step changed the parameters";
  // The checkpoints at the end: every parameter and Adam moment the same bits; the data moved on.
  ASSERT_EQ(checksums(step_file(a, 4)).size(), 3 * sa.final_param_info.size());
  EXPECT_EQ(checksums(step_file(a, 4)), checksums(step_file(b, 5)));
  EXPECT_EQ(ckpt::read_info(step_file(b, 5)).consumed_samples, 5u * 8u);
  // A longer run goes on after the skipped step with the next batch, and learns.
  config::JobConfig c = job("nan_c", 8);
  train::TrainSummary sc;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 4, 4);
    sc = train::run_training(c, MPI_COMM_WORLD, &bad);
  }
  ASSERT_EQ(sc.steps.size(), 8u);
  EXPECT_EQ(sc.steps[5].samples, 5u * 8u);
  for (std::size_t i = 5; i < 8; ++i) {
    EXPECT_FALSE(sc.steps[i].skipped);
    EXPECT_TRUE(std::isfinite(sc.steps[i].loss) && std::isfinite(sc.steps[i].grad_norm));
  }
  EXPECT_LT(sc.steps[7].loss, sc.steps[0].loss);
  // The metrics line of the skipped step is valid JSON (null for the NaN norm).
  std::ifstream in(c.train.out_dir + "/metrics.jsonl");
  std::string line;
  int skipped = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("skipped", 0) == 1) {
      ++skipped;
      EXPECT_EQ(j.at("step").get<int>(), 5);
      EXPECT_TRUE(j.at("grad_norm").is_null());
      EXPECT_EQ(j.at("bad").get<std::string>(), "nonfinite");
      EXPECT_EQ(j.at("samples").get<int>(), 32);
    }
  }
  EXPECT_EQ(skipped, 1);
}

TEST(Guard, PersistentLossSpikeRollsBackSkipsTheDataAndResumesExactly) {
  // Batches 8-10 spike (steps 9-11): three bad steps in a row roll back to the checkpoint of
  // step 8 (step 10's periodic save is not taken: it was bad) and skip samples [64, 88).
  config::JobConfig x = job("spike_x", 14);
  x.guard = spike_guard();
  x.ckpt.interval = 2;
  x.ckpt.keep = 0;
  train::TrainSummary sx;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::loss_spike, 8, 10);
    sx = train::run_training(x, MPI_COMM_WORLD, &bad);
  }
  ASSERT_EQ(sx.rollbacks.size(), 1u);
  const train::Rollback& r = sx.rollbacks[0];
  EXPECT_EQ(r.from_step, 11);
  EXPECT_EQ(r.to_step, 8);
  EXPECT_EQ(r.skip_begin, 64u);
  EXPECT_EQ(r.skip_end, 88u);
  EXPECT_EQ(r.bad_steps, (std::vector<long>{9, 10, 11}));
  EXPECT_EQ(r.checkpoint, step_file(x, 8));
  EXPECT_EQ(sx.bad_steps.size(), 3u);
  // The final trajectory: steps 1-14 once each, none skipped; step 9 trained on batch 11.
  ASSERT_EQ(sx.steps.size(), 14u);
  for (std::size_t i = 0; i < 14; ++i) {
    EXPECT_EQ(sx.steps[i].step, long(i) + 1);
    EXPECT_FALSE(sx.steps[i].skipped);
  }
  EXPECT_EQ(sx.steps[8].samples, 88u);
  const ckpt::CheckpointInfo end = ckpt::read_info(step_file(x, 14));
  EXPECT_EQ(end.consumed_samples, (14u + 3u) * 8u);
  EXPECT_EQ(end.guard.rollbacks, 1);
  EXPECT_EQ(end.guard.skipped_steps, 3);
  EXPECT_EQ(end.guard.skipped_samples, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{64, 88}}));
  // metrics.jsonl: every step once, and one rollback record at the checkpoint's step.
  std::ifstream in(x.train.out_dir + "/metrics.jsonl");
  std::string line;
  std::vector<int> steps;
  int rollbacks = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("rollback")) {
      ++rollbacks;
      EXPECT_EQ(j.at("step").get<int>(), 8);
      EXPECT_EQ(j.at("rollback").at("from_step").get<int>(), 11);
      EXPECT_EQ(j.at("rollback").at("skipped_samples"), nlohmann::json::array({64, 88}));
    } else if (j.contains("loss")) {
      steps.push_back(j.at("step").get<int>());
    }
  }
  EXPECT_EQ(rollbacks, 1);
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
  // Resumed from the checkpoint of step 12 (after the rollback): bitwise the same end.
  config::JobConfig y = job("spike_y", 14);
  y.guard = x.guard;
  y.ckpt.interval = 2;
  y.train.resume = step_file(x, 12);
  train::TrainSummary sy;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::loss_spike, 8, 10);
    sy = train::run_training(y, MPI_COMM_WORLD, &bad);
  }
  ASSERT_EQ(sy.steps.size(), 2u);
  EXPECT_EQ(sy.steps[0].loss, sx.steps[12].loss);
  EXPECT_EQ(sy.steps[1].loss, sx.steps[13].loss);
  EXPECT_TRUE(bitwise_equal(sx.final_params, sy.final_params))
      << "the resume after the rollback is not exact";
  EXPECT_EQ(sy.guard, sx.guard);
}

TEST(Guard, ARollbackThatCannotHappenIsAClearError) {
  config::JobConfig j = job("no_ckpt", 12);
  j.guard.rollback_after = 3;
  std::string message;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 2, 20);
    try {
      train::run_training(j, MPI_COMM_WORLD, &bad);
    } catch (const Error& e) {
      message = e.what();
    }
  }
  EXPECT_NE(message.find("training diverged at step 5: 3 bad steps in a row (steps 3, 4, 5)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("no checkpoint to roll back to"), std::string::npos) << message;
  // With checkpoints but no rollbacks left.
  j = job("no_rollbacks", 12);
  j.guard.rollback_after = 3;
  j.guard.max_rollbacks = 0;
  j.ckpt.interval = 2;
  message.clear();
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 2, 20);
    try {
      train::run_training(j, MPI_COMM_WORLD, &bad);
    } catch (const Error& e) {
      message = e.what();
    }
  }
  EXPECT_NE(message.find("after 0 rollbacks (guard.max_rollbacks = 0)"), std::string::npos) << message;
  // guard.rollback_after: 0 keeps skipping: the run finishes.
  j = job("keep_skipping", 8);
  j.guard.rollback_after = 0;
  train::TrainSummary s;
  {
    const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 2, 5);
    s = train::run_training(j, MPI_COMM_WORLD, &bad);
  }
  EXPECT_EQ(s.steps.size(), 8u);
  EXPECT_EQ(s.guard.skipped_steps, 4);
  EXPECT_TRUE(s.rollbacks.empty());
}
