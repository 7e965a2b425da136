// Checkpoints are exact and layout-independent (issue 5, DESIGN.md invariant 4), on 8 ranks:
//   same layout: a run saved at step 3 and resumed to step 6 has bitwise the losses and
//     parameters of the uninterrupted run;
//   another layout: the checkpoint written with tp2·pp2·dp2 (ZeRO-1) and resumed with
//     tp1·pp2·dp4, tp4·pp1·dp2 and a single rank gives the uninterrupted losses to 1e-5;
//   a LLaMA-style model (GQA, untied output layer, padded vocabulary) likewise;
//   context parallelism: cp ranks hold replicas of the state, so a checkpoint written with
//     tp2·cp2·dp2 resumes on one rank, and one written on one rank resumes with cp2·pp2·dp2
//     (in the Ulysses mode: a checkpoint does not depend on how cp computes attention).
//   a checkpoint written under the zero-bubble schedule zb_h1 resumes under 1f1b and vice versa.
//   ZeRO-2 and ZeRO-3 read those files, and a ZeRO-2 or ZeRO-3 checkpoint (tp2·dp4, layers
//   aligned to dp in the flat buffer) resumes on one rank and on pp2·dp2 ZeRO-1 to 1e-5; and
//   one written by tp2·cp2·dp2 ZeRO-3 resumes on one rank and on pp2·dp4 ZeRO-1 to 1e-5, and
//   one written by pp2·dp2 ZeRO-3 under zb_h1 on one rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "mpi_test_util.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

using test::world_rank;
using test::world_size;

// The layout suites' tiny model, 6 steps with a warm-up, ZeRO-1, its own folders; the GQA
// variant for the LLaMA style and a vocabulary that tp = 4 pads.
config::JobConfig ckpt_job(bool llama, const std::string& name) {
  config::JobConfig j = test::base_job(llama);
  j.model.name = llama ? "ckpt_llama" : "ckpt_gpt";
  j.model.num_kv_heads = llama ? 2 : 0;
  j.model.vocab_size = 66;  // padded to 68 under tp = 4
  j.parallel.zero_stage = 1;
  j.optim.warmup_steps = 2;
  j.optim.schedule = config::ScheduleKind::cosine;
  j.train.steps = 6;
  j.train.seed = 11;
  j.ckpt.save_at_end = true;
  const std::string dir = testing::TempDir() + "/strata_ckpt_mpi/" + name;
  j.train.out_dir = dir + "/run";
  j.ckpt.dir = dir + "/ckpt";
  return j;
}

void set_layout(config::JobConfig& j, int tp, int pp, int dp) {
  j.parallel.tp = tp;
  j.parallel.pp = pp;
  j.parallel.dp = dp;
}

void fresh_dir(const std::string& dir) {
  if (world_rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Runs the job on the first tp*pp*dp ranks; returns the losses (broadcast to every rank).
std::vector<double> losses_of(const config::JobConfig& job, train::TrainSummary* summary = nullptr) {
  const int n = job.parallel.tp * job.parallel.pp * job.parallel.dp * job.parallel.cp;
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &comm);
  std::vector<double> losses;
  if (comm != MPI_COMM_NULL) {
    train::TrainSummary s = train::run_training(job, comm);
    for (const auto& m : s.steps) losses.push_back(m.loss);
    if (summary) *summary = std::move(s);
    MPI_Comm_free(&comm);
  }
  int count = int(losses.size());
  MPI_Bcast(&count, 1, MPI_INT, 0, MPI_COMM_WORLD);
  losses.resize(std::size_t(count));
  MPI_Bcast(losses.data(), count, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return losses;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * std::abs(want[i])) << what << ", step " << i + 4;
}

struct ResumeLayout {
  int tp, pp, dp, zero;
};

// Writes `first`'s checkpoint at step 3, its losses those of the uninterrupted run `full`
// (`all`, one rank), then resumes it from `full` in each of `others`: the last three losses of
// `all` to 1e-5.
void write_then_resume(const config::JobConfig& full, const std::vector<double>& all, config::JobConfig first,
                       const std::vector<ResumeLayout>& others, const std::string& what) {
  first.train.steps = 3;
  first.ckpt.save_at_end = true;
  expect_close(losses_of(first), std::vector<double>(all.begin(), all.begin() + 3), 1e-5,
               what + " before the checkpoint");
  const std::vector<double> tail(all.begin() + 3, all.end());
  for (const ResumeLayout& l : others) {
    config::JobConfig other = full;
    set_layout(other, l.tp, l.pp, l.dp);
    other.parallel.zero_stage = l.zero;
    other.train.resume = first.ckpt.dir + "/step_00000003.h5";
    const std::string tag = "tp" + std::to_string(l.tp) + "-pp" + std::to_string(l.pp) + "-dp" +
                            std::to_string(l.dp) + "-z" + std::to_string(l.zero);
    other.train.out_dir = full.train.out_dir + "_" + tag;
    other.ckpt.dir = full.ckpt.dir + "_" + tag;
    expect_close(losses_of(other), tail, 1e-5, what + " checkpoint resumed in " + tag);
  }
}

// The uninterrupted 6 steps on one rank (ZeRO-0) in the folder `name`.
config::JobConfig one_rank_run(const std::string& name, std::vector<double>& all) {
  config::JobConfig full = ckpt_job(false, name);
  set_layout(full, 1, 1, 1);
  full.parallel.zero_stage = 0;
  full.ckpt.save_at_end = false;
  full.optim.decay_steps = full.train.steps;
  fresh_dir(testing::TempDir() + "/strata_ckpt_mpi/" + name);
  all = losses_of(full);
  return full;
}

}  // namespace

TEST(Checkpoint, SameLayoutResumeIsBitwiseAndOtherLayoutsMatch) {
  ASSERT_EQ(world_size(), 8);
  // The uninterrupted run in tp2·pp2·dp2.
  config::JobConfig full = ckpt_job(false, "gpt");
  set_layout(full, 2, 2, 2);
  full.ckpt.save_at_end = false;
  // The LR schedule decays over the whole run: the first half of the interrupted run keeps it.
  full.optim.decay_steps = full.train.steps;
  fresh_dir(testing::TempDir() + "/strata_ckpt_mpi/gpt");
  train::TrainSummary uninterrupted;
  const std::vector<double> all = losses_of(full, &uninterrupted);
  ASSERT_EQ(all.size(), 6u);
  const std::vector<double> tail(all.begin() + 3, all.end());

  // Stop at step 3 (the checkpoint is saved at the end), then resume to 6 in the same layout.
  config::JobConfig first = full;
  first.train.steps = 3;
  first.ckpt.save_at_end = true;
  losses_of(first);
  const std::string ckpt_file = first.ckpt.dir + "/step_00000003.h5";
  ASSERT_TRUE(std::filesystem::exists(ckpt_file));
  EXPECT_EQ(ckpt::find_latest(first.ckpt.dir), ckpt_file);
  const ckpt::CheckpointInfo info = ckpt::read_info(first.ckpt.dir);
  EXPECT_EQ(info.step, 3);
  EXPECT_EQ(info.consumed_samples, 24u);
  EXPECT_EQ(info.tokens_seen, 24u * 16u);
  EXPECT_EQ(info.layout, "tp2-pp2-dp2 zero1");

  config::JobConfig resumed = full;
  resumed.train.resume = ckpt_file;
  resumed.train.out_dir += "_resumed";
  resumed.ckpt.dir += "_resumed";
  train::TrainSummary after;
  const std::vector<double> same = losses_of(resumed, &after);
  ASSERT_EQ(same.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(same[i], tail[i]) << "step " << i + 4 << " not bitwise equal";
  EXPECT_EQ(after.first_step, 4);
  ASSERT_EQ(after.final_params.size(), uninterrupted.final_params.size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < after.final_params.size(); ++i)
    differing += after.final_params[i] != uninterrupted.final_params[i];
  EXPECT_EQ(differing, 0u) << "parameters after the resumed run differ from the uninterrupted run";

  // Other layouts, ZeRO stages and a single rank read the same file.
  struct Layout {
    int tp, pp, dp, zero;
  };
  for (const Layout l :
       {Layout{1, 2, 4, 1}, Layout{4, 1, 2, 0}, Layout{1, 1, 1, 0}, Layout{2, 1, 4, 2}, Layout{1, 1, 8, 3}}) {
    config::JobConfig other = resumed;
    set_layout(other, l.tp, l.pp, l.dp);
    other.parallel.zero_stage = l.zero;
    const std::string tag = "tp" + std::to_string(l.tp) + "-pp" + std::to_string(l.pp) + "-dp" +
                            std::to_string(l.dp) + "-z" + std::to_string(l.zero);
    other.train.out_dir = full.train.out_dir + "_" + tag;
    other.ckpt.dir = full.ckpt.dir + "_" + tag;
    expect_close(losses_of(other), tail, 1e-5, "resumed in " + tag);
  }
}

TEST(Checkpoint, LlamaStyleModelMovesBetweenLayouts) {
  ASSERT_EQ(world_size(), 8);
  config::JobConfig full = ckpt_job(true, "llama");
  full.optim.decay_steps = full.train.steps;
  set_layout(full, 1, 1, 1);
  full.ckpt.save_at_end = false;
  fresh_dir(testing::TempDir() + "/strata_ckpt_mpi/llama");
  const std::vector<double> all = losses_of(full);
  const std::vector<double> tail(all.begin() + 3, all.end());

  config::JobConfig first = full;
  set_layout(first, 2, 2, 2);
  first.train.steps = 3;
  first.ckpt.save_at_end = true;
  losses_of(first);

  config::JobConfig resumed = full;
  set_layout(resumed, 2, 1, 4);
  resumed.parallel.sequence_parallel = true;
  resumed.train.resume = "auto";  // ckpt.dir's latest
  resumed.ckpt.dir = first.ckpt.dir;
  resumed.ckpt.save_at_end = false;
  resumed.train.out_dir += "_resumed";
  expect_close(losses_of(resumed), tail, 1e-5, "LLaMA-style, written tp2-pp2-dp2, resumed tp2-pp1-dp4 SP");
}

TEST(Checkpoint, ContextParallelLayoutsAndOneRankResumeEachOther) {
  ASSERT_EQ(world_size(), 8);
  config::JobConfig full = ckpt_job(true, "cp");
  full.optim.decay_steps = full.train.steps;
  set_layout(full, 1, 1, 1);
  full.parallel.zero_stage = 0;
  full.ckpt.save_at_end = false;
  fresh_dir(testing::TempDir() + "/strata_ckpt_mpi/cp");
  const std::vector<double> all = losses_of(full);
  const std::vector<double> tail(all.begin() + 3, all.end());
  struct Move {
    int tp, cp, pp, dp;  // the layout that writes (resumed on one rank), or resumes (written on one rank)
    bool writes;
    config::CpMode mode;
  };
  for (const Move m :
       {Move{2, 2, 1, 2, true, config::CpMode::ring}, Move{1, 2, 2, 2, false, config::CpMode::ulysses}}) {
    const std::string tag = "tp" + std::to_string(m.tp) + "-cp" + std::to_string(m.cp) + "-pp" +
                            std::to_string(m.pp) + "-dp" + std::to_string(m.dp) + "-" +
                            config::to_string(m.mode);
    config::JobConfig first = full;
    first.train.steps = 3;
    first.ckpt.save_at_end = true;
    first.ckpt.dir += "_" + tag;
    first.train.out_dir += "_" + tag;
    config::JobConfig resumed = full;
    resumed.train.resume = "auto";
    resumed.ckpt.dir = first.ckpt.dir;
    resumed.train.out_dir += "_" + tag + "_resumed";
    config::JobConfig& multi = m.writes ? first : resumed;
    set_layout(multi, m.tp, m.pp, m.dp);
    multi.parallel.cp = m.cp;
    multi.parallel.cp_mode = m.mode;
    multi.parallel.sequence_parallel = m.tp > 1;
    multi.parallel.zero_stage = 1;
    losses_of(first);
    if (m.writes) {
      EXPECT_EQ(ckpt::read_info(first.ckpt.dir).layout, "tp2-pp1-dp2-cp2 zero1");
    }
    expect_close(
        losses_of(resumed), tail, 1e-5,
        m.writes ? "written " + tag + ", resumed on one rank" : "written on one rank, resumed " + tag);
  }
}

TEST(Checkpoint, ZeroBubbleAndOneFOneBResumeEachOther) {
  ASSERT_EQ(world_size(), 8);
  using S = config::PipelineSchedule;
  config::JobConfig full = ckpt_job(false, "zb");
  set_layout(full, 1, 4, 2);  // 4 micro-batches per DP rank: stage s of 4 holds s W passes back
  full.parallel.schedule = S::one_f_one_b;
  full.optim.decay_steps = full.train.steps;
  full.ckpt.save_at_end = false;
  fresh_dir(testing::TempDir() + "/strata_ckpt_mpi/zb");
  const std::vector<double> all = losses_of(full);
  ASSERT_EQ(all.size(), 6u);
  const std::vector<double> tail(all.begin() + 3, all.end());
  for (const S written : {S::zb_h1, S::one_f_one_b}) {
    const S read = written == S::zb_h1 ? S::one_f_one_b : S::zb_h1;
    const std::string tag = std::string(config::to_string(written)) + "_to_" + config::to_string(read);
    config::JobConfig first = full;
    first.parallel.schedule = written;
    first.train.steps = 3;
    first.ckpt.save_at_end = true;
    first.ckpt.dir = full.ckpt.dir + "_" + tag;
    first.train.out_dir = full.train.out_dir + "_" + tag;
    losses_of(first);
    config::JobConfig resumed = full;
    resumed.parallel.schedule = read;
    resumed.train.resume = "auto";
    resumed.ckpt.dir = first.ckpt.dir;
    resumed.train.out_dir = first.train.out_dir + "_resumed";
    expect_close(losses_of(resumed), tail, 1e-5, "written under " + tag);
  }
}

TEST(Checkpoint, ZeroTwoAndThreeCheckpointsResumeOnOneRankAndUnderZeroOne) {
  ASSERT_EQ(world_size(), 8);
  for (const int zero : {2, 3}) {
    SCOPED_TRACE("written under ZeRO-" + std::to_string(zero));
    const std::string name = "zero" + std::to_string(zero);
    std::vector<double> all;
    const config::JobConfig full = one_rank_run(name, all);
    config::JobConfig first = full;
    set_layout(first, 2, 1, 4);
    first.parallel.zero_stage = zero;
    first.parallel.sequence_parallel = true;
    write_then_resume(full, all, first, {{1, 1, 1, 0}, {1, 2, 2, 1}}, name + " tp2-dp4");
    EXPECT_EQ(ckpt::read_info(first.ckpt.dir).layout, "tp2-pp1-dp4 zero" + std::to_string(zero));
  }
}

// The cross-resume: a checkpoint written by tp2-cp2-dp2 under ZeRO-3 (each layer's
// gradients summed over cp and reduce-scattered over dp, parameters sharded over dp, the cp
// ranks holding replicas of the shards) resumes on one rank and on pp2-dp4 ZeRO-1 to 1e-5.
TEST(Checkpoint, ZeroThreeContextParallelCheckpointResumesOnOneRankAndUnderZeroOne) {
  ASSERT_EQ(world_size(), 8);
  std::vector<double> all;
  const config::JobConfig full = one_rank_run("zero3_cp", all);
  config::JobConfig first = full;
  set_layout(first, 2, 1, 2);
  first.parallel.cp = 2;
  first.parallel.zero_stage = 3;
  first.parallel.sequence_parallel = true;
  write_then_resume(full, all, first, {{1, 1, 1, 0}, {1, 2, 4, 1}}, "tp2-cp2-dp2 ZeRO-3");
  EXPECT_EQ(ckpt::read_info(first.ckpt.dir).layout, "tp2-pp1-dp2-cp2 zero3");
}

// ZeRO-3 under the zero-bubble schedule (each layer's unit reduce-scattered after its W pass,
// the B pass's norm and bias gradients held until then): a checkpoint written by pp2-dp2
// resumes on one rank to 1e-5.
TEST(Checkpoint, ZeroThreeZeroBubbleCheckpointResumesOnOneRank) {
  ASSERT_EQ(world_size(), 8);
  std::vector<double> all;
  const config::JobConfig full = one_rank_run("zero3_zb", all);
  config::JobConfig first = full;
  set_layout(first, 1, 2, 2);
  first.parallel.zero_stage = 3;
  first.parallel.schedule = config::PipelineSchedule::zb_h1;
  write_then_resume(full, all, first, {{1, 1, 1, 0}}, "pp2-dp2 zb_h1 ZeRO-3");
  EXPECT_EQ(ckpt::read_info(first.ckpt.dir).layout, "tp1-pp2-dp2 zero3");
}
