// The bad-step guard on four ranks (train/guard.hpp, docs/checkpoints.md "Bad steps"), bad steps
// injected on every rank by fault hooks (core/faults.hpp):
//   a NaN gradient (every rank's loss gradient scaled by NaN) is skipped by every rank alike,
//     and each rank's parameters after it are bitwise those before it — in tp2·pp2 and in
//     tp2·dp2 with ZeRO-1 (the norm summed over the world, the moments sharded);
//   a persistent loss spike in pp2·dp2 (ZeRO-1) rolls back to the last checkpoint, skips the
//     same samples and ends with the losses of the same run on one rank (to 1e-5); resumed
//     from a checkpoint written after the rollback, it ends bitwise where it ended.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "mpi_test_util.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

using test::world_rank;
using test::world_size;
namespace fs = std::filesystem;

// Fault hooks (core/faults.hpp) that make the steps on global batches first..last bad.
FaultHooks bad_batches(FaultHooks::BadBatches::Kind kind, std::uint64_t first, std::uint64_t last) {
  FaultHooks h;
  h.bad_batches.kind = kind;
  h.bad_batches.first = first;
  h.bad_batches.last = last;
  return h;
}

config::JobConfig guard_job(const std::string& name, int tp, int pp, int dp, int steps) {
  config::JobConfig j = test::base_job(false);
  j.parallel.tp = tp;
  j.parallel.pp = pp;
  j.parallel.dp = dp;
  j.parallel.zero_stage = dp > 1 ? 1 : 0;
  j.train.steps = steps;
  j.eval.windows = 0;
  const std::string dir = testing::TempDir() + "/strata_guard_mpi/" + name;
  j.train.out_dir = dir + "/run";
  j.ckpt.dir = dir + "/ckpt";
  return j;
}

// Runs the job on the first tp*pp*dp ranks (a fresh folder); ranks outside it get an empty summary.
train::TrainSummary run(const config::JobConfig& job, const FaultHooks* faults = nullptr) {
  const int n = job.parallel.tp * job.parallel.pp * job.parallel.dp;
  if (world_rank() == 0) fs::remove_all(fs::path(job.train.out_dir).parent_path());
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  train::TrainSummary s;
  if (comm != MPI_COMM_NULL) {
    s = train::run_training(job, comm, faults);
    MPI_Comm_free(&comm);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return s;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return !a.empty() && a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// True on every rank when `ok` holds on every rank.
bool all_ranks(bool ok) {
  int v = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

}  // namespace

TEST(GuardMpi, NanGradientIsSkippedAlikeAndLeavesEveryRanksParametersBitwise) {
  ASSERT_EQ(world_size(), 4);
  struct Layout {
    int tp, pp, dp;
  };
  for (const Layout& l : {Layout{2, 2, 1}, Layout{2, 1, 2}}) {
    const std::string name =
        "tp" + std::to_string(l.tp) + "pp" + std::to_string(l.pp) + "dp" + std::to_string(l.dp);
    const train::TrainSummary before = run(guard_job(name + "_a", l.tp, l.pp, l.dp, 3));
    train::TrainSummary after;
    {
      const FaultHooks bad = bad_batches(FaultHooks::BadBatches::nan_grad, 3, 3);  // step 4
      after = run(guard_job(name + "_b", l.tp, l.pp, l.dp, 4), &bad);
    }
    ASSERT_EQ(after.steps.size(), 4u) << name;
    EXPECT_TRUE(all_ranks(after.steps[3].skipped && after.steps[3].bad == train::BadKind::nonfinite))
        << name << ": not every rank skipped step 4";
    EXPECT_TRUE(all_ranks(!after.steps[2].skipped)) << name;
    EXPECT_TRUE(all_ranks(bitwise_equal(before.final_params, after.final_params)))
        << name << ": the skipped step changed parameters on some rank";
  }
}

TEST(GuardMpi, LossSpikeRollsBackOnFourRanksLikeOneRankAndResumesBitwise) {
  ASSERT_EQ(world_size(), 4);
  auto spiky = [](const std::string& name, int tp, int pp, int dp) {
    config::JobConfig j = guard_job(name, tp, pp, dp, 12);
    j.ckpt.interval = 2;
    j.ckpt.keep = 0;
    j.guard.loss_spike_factor = 3;
    j.guard.loss_warmup = 3;
    j.guard.rollback_after = 3;
    return j;
  };
  // Batches 6-8 spike: steps 7-9 bad, rollback at step 9 to step 6, samples [48, 72) skipped.
  const FaultHooks bad = bad_batches(FaultHooks::BadBatches::loss_spike, 6, 8);
  const train::TrainSummary one = run(spiky("one", 1, 1, 1), &bad);
  const config::JobConfig four_job = spiky("four", 1, 2, 2);
  const train::TrainSummary four = run(four_job, &bad);
  ASSERT_EQ(four.rollbacks.size(), 1u);
  EXPECT_EQ(four.rollbacks[0].from_step, 9);
  EXPECT_EQ(four.rollbacks[0].to_step, 6);
  EXPECT_EQ(four.rollbacks[0].skip_begin, 48u);
  EXPECT_EQ(four.rollbacks[0].skip_end, 72u);
  EXPECT_TRUE(
      all_ranks(four.rollbacks.size() == 1 && four.steps.size() == 12 && four.guard.skipped_steps == 3));
  if (world_rank() == 0) {
    ASSERT_EQ(one.rollbacks.size(), 1u);
    EXPECT_EQ(one.rollbacks[0].skip_end, four.rollbacks[0].skip_end);
    ASSERT_EQ(one.steps.size(), 12u);
    for (std::size_t i = 0; i < 12; ++i)
      EXPECT_NEAR(four.steps[i].loss, one.steps[i].loss, 1e-5 * one.steps[i].loss) << "step " << i + 1;
  }
  // Resumed in the same layout from the checkpoint of step 10 (written after the rollback).
  config::JobConfig resumed = spiky("four_resumed", 1, 2, 2);
  resumed.train.resume = four_job.ckpt.dir + "/step_00000010.h5";
  const train::TrainSummary again = run(resumed, &bad);
  EXPECT_TRUE(all_ranks(again.steps.size() == 2)) << "resumed at the wrong step";
  EXPECT_TRUE(all_ranks(bitwise_equal(four.final_params, again.final_params)))
      << "the resume after a rollback is not bitwise on some rank";
}
