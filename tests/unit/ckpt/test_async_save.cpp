// Asynchronous checkpoint saves (docs/checkpoints.md, "Asynchronous saves") on one rank: a save
// written in the background holds bit for bit what a synchronous save of the same step holds,
// training goes on while it is written, the next save waits for it, and a data loader reading
// HDF5 in its own thread meanwhile neither blocks for the save nor corrupts it. (Killed during
// a background write: tests/mpi/ckpt_async_kill.sh.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "../data/data_test_util.hpp"
#include "../mpi_singleton.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/data/format.hpp"
#include "strata/data/hdf5_util.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

namespace fs = std::filesystem;

config::JobConfig job(const std::string& name, int steps, bool async) {
  config::JobConfig j = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  j.train.steps = steps;
  j.hardware.peak_tflops = 0.1;
  j.eval.windows = 0;
  j.train.log_interval = 1000;
  j.ckpt.interval = 1;
  j.ckpt.keep = 0;
  j.ckpt.async = async;
  const fs::path dir = fs::path(testing::TempDir()) / ("strata_async_" + name);
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

// Every checkpoint of two runs holds the same tensors and the same position.
void expect_same_checkpoints(const config::JobConfig& a, const config::JobConfig& b, int steps) {
  for (long s = 1; s <= steps; ++s) {
    const std::vector<std::uint64_t> ca = checksums(step_file(a, s));
    EXPECT_EQ(ca.size(), 108u) << "step " << s;
    EXPECT_EQ(ca, checksums(step_file(b, s))) << "step " << s;
    EXPECT_EQ(ckpt::read_info(step_file(a, s)).consumed_samples,
              ckpt::read_info(step_file(b, s)).consumed_samples);
  }
}

// Fault hooks (core/faults.hpp) that pause the save of step `step` (-1: every save) `seconds`
// halfway through its tensors.
FaultHooks save_pause(long step, double seconds) {
  FaultHooks h;
  h.save_pause.step = step;
  h.save_pause.every = step < 0;
  h.save_pause.seconds = seconds;
  return h;
}

}  // namespace

TEST(AsyncSave, BackgroundSavesHoldWhatSynchronousSavesHold) {
  const config::JobConfig a = job("bg", 6, true), s = job("sync", 6, false);
  const train::TrainSummary sa = train::run_training(a, MPI_COMM_WORLD);
  const train::TrainSummary ss = train::run_training(s, MPI_COMM_WORLD);
  EXPECT_TRUE(sa.async_checkpoints);
  EXPECT_FALSE(ss.async_checkpoints);
  expect_same_checkpoints(a, s, 6);
  EXPECT_EQ(ckpt::find_latest(a.ckpt.dir), step_file(a, 6));
  EXPECT_EQ(sa.last_checkpoint, step_file(a, 6));
  for (std::size_t i = 0; i < sa.steps.size(); ++i) EXPECT_EQ(sa.steps[i].loss, ss.steps[i].loss);
}

TEST(AsyncSave, TrainingGoesOnWhileASaveIsWrittenAndTheNextSaveWaitsForIt) {
  // The save of step 2 pauses 0.6 s halfway through its tensors, on the writer thread.
  config::JobConfig j = job("pause", 4, true);
  j.ckpt.interval = 2;
  train::TrainSummary s;
  {
    const FaultHooks pause = save_pause(2, 0.6);
    s = train::run_training(j, MPI_COMM_WORLD, &pause);
  }
  ASSERT_EQ(s.steps.size(), 4u);
  // Step 2 paid only its snapshot; step 3 ran while the save was written; step 4's save (the
  // last, written before the run ends) waited for it.
  EXPECT_LT(s.steps[1].ckpt_ms, 200.0);
  EXPECT_LT(s.steps[2].step_ms + s.steps[2].ckpt_ms, 300.0);
  EXPECT_GT(s.steps[3].save_wait_ms, 200.0);
  EXPECT_GE(s.steps[3].ckpt_ms, s.steps[3].save_wait_ms);
  EXPECT_TRUE(fs::exists(step_file(j, 2)));
  EXPECT_EQ(ckpt::find_latest(j.ckpt.dir), step_file(j, 4));
}

TEST(AsyncSave, ALoaderReadingHdf5MeanwhileNeitherWaitsForTheSaveNorCorruptsIt) {
  // Training data from an HDF5 dataset read one micro-batch ahead by the loader thread, while
  // every step's checkpoint is written (slowly: a 150 ms pause each) by the writer thread.
  const std::string dir = (fs::path(testing::TempDir()) / "strata_async_hdf5_data").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  data::DatasetInfo info;
  info.tokenizer_name = "test";
  info.vocab_size = 64;
  std::vector<std::int32_t> tokens;
  std::vector<std::uint64_t> lengths;
  for (int d = 0; d < 400; ++d) {
    for (int i = 0; i < 50; ++i) tokens.push_back((d * 7 + i * i) % 64);
    lengths.push_back(50);
  }
  data::write_token_dataset(dir + "/tokens.h5", data::testing_util::one_rank(), info, tokens, lengths);
  auto with_data = [&](config::JobConfig j) {
    j.data.source = config::DataSource::hdf5;
    j.data.datasets = {{dir + "/tokens.h5", 1.0}};
    j.data.prefetch = 1;
    return j;
  };
  const config::JobConfig a = with_data(job("hdf5_bg", 5, true)), s = with_data(job("hdf5_sync", 5, false));
  train::TrainSummary sa, ss;
  {
    const FaultHooks pause = save_pause(-1, 0.15);
    sa = train::run_training(a, MPI_COMM_WORLD, &pause);
    ss = train::run_training(s, MPI_COMM_WORLD, &pause);
  }
  expect_same_checkpoints(a, s, 5);
  for (std::size_t i = 0; i < sa.steps.size(); ++i) {
    EXPECT_EQ(sa.steps[i].loss, ss.steps[i].loss) << "the loader read other data";
    // The writer lets the loader in between tensors (and during its pause): no step waited
    // for its data the length of a save.
    EXPECT_LT(sa.steps[i].data_wait_ms, 75.0) << "step " << i + 1;
  }
}

TEST(Hdf5Lock, YieldHandsTheLibraryToAWaitingThread) {
  // A long holder (the writer) yields between its calls: a thread that asks for HDF5 gets it at
  // the next yield, not when the holder is done.
  std::atomic<bool> holder_done{false}, started{false};
  std::thread holder([&] {
    h5::Lock lock;
    started = true;
    for (int i = 0; i < 150; ++i) {  // ~0.3 s of "HDF5 calls"
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      lock.yield();
    }
    holder_done = true;
  });
  while (!started) std::this_thread::yield();
  int got = 0;
  for (int i = 0; i < 20; ++i) {
    const h5::Lock lock;
    ++got;
  }
  const bool before_holder_finished = !holder_done;
  holder.join();
  EXPECT_EQ(got, 20);
  EXPECT_TRUE(before_holder_finished) << "the waiting thread got the lock only after the holder let go";
  // Without waiters a yield keeps the lock (nothing to hand over) and costs nothing.
  h5::Lock lock;
  lock.yield();
}
