// Verification of checkpoints written by the real trainer (configs/test_tiny.yaml, one rank), and
// the fallback of train.resume=auto to the newest intact checkpoint.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>

#include "../mpi_singleton.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/ckpt/verify.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

config::JobConfig tiny_job(const std::string& name, int steps) {
  config::JobConfig job = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  job.train.steps = steps;
  job.train.out_dir = testing::TempDir() + "/strata_verify_unit/" + name;
  job.ckpt.dir = job.train.out_dir + "/ckpt";
  job.ckpt.interval = 1;
  job.ckpt.keep = 0;
  job.eval.windows = 0;
  fs::remove_all(job.train.out_dir);
  return job;
}

// Checkpoints of steps 1..steps in a folder of the test's own (ctest runs tests in parallel
// processes), written by the trainer.
std::string checkpoints(int steps, const std::string& name) {
  const config::JobConfig job = tiny_job(name, steps);
  train::run_training(job, MPI_COMM_WORLD);
  return job.ckpt.dir;
}

std::string step_file(const std::string& dir, int step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08d.h5", step);
  return (fs::path(dir) / name).string();
}

// Flips one bit of the stored values of `dataset`, `at` bytes into its data.
void flip_byte(const std::string& file, const std::string& dataset, std::uint64_t at) {
  haddr_t offset = 0;
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
    offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(std::streamoff(offset + at));
  char c = 0;
  io.read(&c, 1);
  c = char(c ^ 0x10);
  io.seekp(std::streamoff(offset + at));
  io.write(&c, 1);
}

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  for (const auto& l : lines)
    if (l.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(VerifyCheckpoint, AnIntactCheckpointMatchesEveryStoredChecksum) {
  const std::string dir = checkpoints(3, "intact");
  const ckpt::VerifyResult v = ckpt::verify_checkpoint(step_file(dir, 3));
  EXPECT_TRUE(v.intact()) << (v.problems.empty() ? "" : v.problems.front());
  EXPECT_EQ(v.step, 3);
  // Every tensor of the model, three kinds (parameters, two Adam moments), checked.
  const std::vector<ckpt::StoredTensor> listed = ckpt::list_tensors(step_file(dir, 3));
  ASSERT_EQ(v.tensors.size(), listed.size());
  ASSERT_GT(listed.size(), 3u);
  for (std::size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(v.tensors[i].path, listed[i].path);
    EXPECT_EQ(v.tensors[i].computed, listed[i].checksum) << listed[i].path;
    EXPECT_TRUE(v.tensors[i].ok());
  }
  // The checksums of a whole-tensor read, for one tensor: the same.
  const std::vector<float> w = ckpt::read_tensor(step_file(dir, 3), "/model/embed.wte");
  EXPECT_EQ(ckpt::checksum(w.data(), std::int64_t(w.size())), v.tensors.front().computed);
}

TEST(VerifyCheckpoint, ReadingInSmallPiecesGivesTheSameChecksums) {
  // 100 elements per read: most tensors are read in many row blocks, each hashed at its offset.
  const std::string dir = checkpoints(3, "pieces");
  const ckpt::VerifyResult whole = ckpt::verify_checkpoint(step_file(dir, 2));
  const ckpt::VerifyResult small = ckpt::verify_checkpoint(step_file(dir, 2), nullptr, 100);
  ASSERT_EQ(whole.tensors.size(), small.tensors.size());
  for (std::size_t i = 0; i < whole.tensors.size(); ++i)
    EXPECT_EQ(whole.tensors[i].computed, small.tensors[i].computed);
  EXPECT_TRUE(small.intact());
}

TEST(VerifyCheckpoint, AFlippedByteIsNamedByFileAndTensor) {
  const std::string dir = checkpoints(3, "flipped");
  const std::string file = step_file(dir, 3);
  flip_byte(file, "/optim/exp_avg/layers.1.mlp.fc.weight", 1000);
  const ckpt::VerifyResult v = ckpt::verify_checkpoint(file);
  EXPECT_FALSE(v.intact());
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_NE(v.problems[0].find("checkpoint '" + file +
                               "': tensor /optim/exp_avg/layers.1.mlp.fc.weight fails its "
                               "checksum"),
            std::string::npos)
      << v.problems[0];
  int bad = 0;
  for (const auto& t : v.tensors) bad += t.ok() ? 0 : 1;
  EXPECT_EQ(bad, 1);
}

TEST(VerifyCheckpoint, ATruncatedFileAndAForeignFileAreReported) {
  const std::string dir = checkpoints(3, "truncated");
  const std::string file = step_file(dir, 3);
  fs::resize_file(file, fs::file_size(file) - 1000);
  const ckpt::VerifyResult v = ckpt::verify_checkpoint(file);
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_NE(v.problems[0].find("cannot be opened (truncated"), std::string::npos) << v.problems[0];
  EXPECT_TRUE(v.tensors.empty());
  std::ofstream(dir + "/junk.h5") << "not hdf5";
  EXPECT_FALSE(ckpt::verify_checkpoint(dir + "/junk.h5").intact());
  EXPECT_THROW(ckpt::verify_checkpoint(dir + "/missing.h5"), Error);
}

TEST(ResumeFallback, ListsStepFilesNewestFirstAndIgnoresTemporaries) {
  const std::string dir = checkpoints(3, "list");
  std::ofstream(dir + "/.step_00000004.h5.tmp") << "half a save";
  std::ofstream(dir + "/step_12.h5x") << "not a checkpoint name";
  EXPECT_EQ(ckpt::list_checkpoints(dir),
            (std::vector<std::string>{step_file(dir, 3), step_file(dir, 2), step_file(dir, 1)}));
  EXPECT_TRUE(ckpt::list_checkpoints(dir + "/nothere").empty());
}

TEST(ResumeFallback, AFlippedByteThenATruncationFallBackOneCheckpointEach) {
  const std::string dir = checkpoints(3, "fallback");
  // Intact: the one `latest` names.
  ckpt::IntactCheckpoint c = ckpt::find_intact_checkpoint(dir, nullptr);
  EXPECT_EQ(c.file, step_file(dir, 3));
  EXPECT_TRUE(c.skipped.empty());
  // A flipped byte in the newest: the previous one, and the skipped one says why.
  flip_byte(step_file(dir, 3), "/model/layers.0.attn.wq.weight", 8);
  c = ckpt::find_intact_checkpoint(dir, nullptr);
  EXPECT_EQ(c.file, step_file(dir, 2));
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_EQ(c.skipped[0].file, step_file(dir, 3));
  EXPECT_TRUE(mentions(c.skipped[0].problems, "tensor /model/layers.0.attn.wq.weight fails its checksum"));
  // Then a truncated one: one further back.
  fs::resize_file(step_file(dir, 2), fs::file_size(step_file(dir, 2)) / 2);
  c = ckpt::find_intact_checkpoint(dir, nullptr);
  EXPECT_EQ(c.file, step_file(dir, 1));
  ASSERT_EQ(c.skipped.size(), 2u);
  EXPECT_TRUE(mentions(c.skipped[1].problems, "truncated"));
  // All damaged: an error naming each, not a silent fresh start.
  fs::resize_file(step_file(dir, 1), 100);
  try {
    ckpt::find_intact_checkpoint(dir, nullptr);
    ADD_FAILURE() << "no error without an intact checkpoint";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no intact checkpoint in '" + dir + "' (3 damaged"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step_00000001.h5"), std::string::npos) << msg;
  }
}

TEST(ResumeFallback, LatestDecidesWhatIsPublished) {
  const std::string dir = checkpoints(3, "latest");
  // A file renamed into place by a save killed before `latest` moved: not published, not used.
  std::ofstream(dir + "/latest") << "step_00000002.h5\n";
  // Through the trainer's drop-in, over a (one-rank) job's world group.
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 1);
  EXPECT_EQ(ckpt::find_latest_intact(dir, grid.world_group()), step_file(dir, 2));
}

TEST(ResumeFallback, AnEmptyDirectoryIsAFreshStartAndAMissingPointerTargetFallsBack) {
  const std::string empty = testing::TempDir() + "/strata_verify_unit/empty";
  fs::remove_all(empty);
  fs::create_directories(empty);
  EXPECT_EQ(ckpt::find_intact_checkpoint(empty, nullptr).file, "");
  EXPECT_EQ(ckpt::find_intact_checkpoint(empty + "/not_created_yet", nullptr).file, "");
  // `latest` names a deleted file: the newest older intact one, with the pointer reported.
  const std::string dir = checkpoints(3, "dangling");
  fs::remove(step_file(dir, 3));
  const ckpt::IntactCheckpoint c = ckpt::find_intact_checkpoint(dir, nullptr);
  EXPECT_EQ(c.file, step_file(dir, 2));
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_TRUE(mentions(c.skipped[0].problems, "names 'step_00000003.h5', which does not exist"));
  // No `latest` at all, but step files: the newest intact one.
  fs::remove(dir + "/latest");
  EXPECT_EQ(ckpt::find_intact_checkpoint(dir, nullptr).file, step_file(dir, 2));
}

TEST(ResumeFallback, TheRunContinuesExactlyFromTheCheckpointItFallsBackTo) {
  // Uninterrupted: 4 steps. Interrupted: the checkpoints of 3 steps, the newest corrupt; the
  // run resumed from the fallback (step 2) repeats steps 3 and 4 with the same losses, bit for bit.
  config::JobConfig full = tiny_job("exact_full", 4);
  full.ckpt.interval = 0;
  full.ckpt.save_at_end = false;
  const train::TrainSummary a = train::run_training(full, MPI_COMM_WORLD);
  const std::string dir = checkpoints(3, "exact");
  flip_byte(step_file(dir, 3), "/optim/exp_avg_sq/final_norm.weight", 4);
  config::JobConfig resumed = tiny_job("exact_resumed", 4);
  resumed.ckpt.interval = 0;
  resumed.ckpt.save_at_end = false;
  resumed.train.resume = ckpt::find_intact_checkpoint(dir, nullptr).file;
  ASSERT_EQ(resumed.train.resume, step_file(dir, 2));
  const train::TrainSummary b = train::run_training(resumed, MPI_COMM_WORLD);
  ASSERT_EQ(a.steps.size(), 4u);
  ASSERT_EQ(b.steps.size(), 2u);
  EXPECT_EQ(b.steps[0].step, 3);
  EXPECT_EQ(b.steps[0].loss, a.steps[2].loss);
  EXPECT_EQ(b.steps[1].loss, a.steps[3].loss);
  EXPECT_EQ(b.final_params, a.final_params);
}
