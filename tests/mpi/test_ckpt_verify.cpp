// Checkpoint verification split over the ranks of a job (4 ranks): checkpoints written by a
// tp2 x dp2 run, verified in pieces of 500 elements spread over the ranks: the same checksums
// as one process alone, the same verdict on every rank for a flipped byte, and the fallback of
// train.resume=auto to the previous checkpoint on every rank.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>

#include "mpi_test_util.hpp"
#include "strata/ckpt/verify.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

TEST(VerifyOverRanks, SplitReadingAgreesWithOneProcessAndEveryRankFallsBackAlike) {
  if (test::world_size() != 4) GTEST_SKIP() << "needs 4 ranks";
  config::JobConfig job = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  job.train.steps = 3;
  job.train.out_dir = testing::TempDir() + "/strata_verify_mpi";
  job.ckpt.dir = job.train.out_dir + "/ckpt";
  job.ckpt.interval = 1;
  job.ckpt.keep = 0;
  job.eval.windows = 0;
  job.parallel.tp = 2;
  if (test::world_rank() == 0) fs::remove_all(job.train.out_dir);
  MPI_Barrier(MPI_COMM_WORLD);
  train::run_training(job, MPI_COMM_WORLD);
  const std::string newest = job.ckpt.dir + "/step_00000003.h5";

  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 4);
  const ckpt::VerifyResult split = ckpt::verify_checkpoint(newest, &grid.world_group(), 500);
  const ckpt::VerifyResult alone = ckpt::verify_checkpoint(newest);
  EXPECT_TRUE(split.intact()) << (split.problems.empty() ? "" : split.problems.front());
  ASSERT_EQ(split.tensors.size(), alone.tensors.size());
  for (std::size_t i = 0; i < split.tensors.size(); ++i) {
    EXPECT_EQ(split.tensors[i].computed, alone.tensors[i].computed) << split.tensors[i].path;
    EXPECT_EQ(split.tensors[i].computed, split.tensors[i].stored) << split.tensors[i].path;
  }

  // One rank damages the file; every rank reads a different part of it, all reach one verdict.
  // The barrier: no rank may still be verifying the intact file alone while it is damaged.
  MPI_Barrier(MPI_COMM_WORLD);
  if (test::world_rank() == 0) {
    haddr_t offset = 0;
    const hid_t f = H5Fopen(newest.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/model/embed.wte", H5P_DEFAULT);
    offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    std::fstream io(newest, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(std::streamoff(offset + 9000));
    char c = 0;
    io.read(&c, 1);
    c = char(c ^ 0x01);
    io.seekp(std::streamoff(offset + 9000));
    io.write(&c, 1);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const ckpt::VerifyResult bad = ckpt::verify_checkpoint(newest, &grid.world_group(), 500);
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_NE(bad.problems[0].find("tensor /model/embed.wte fails its checksum"), std::string::npos)
      << bad.problems[0];
  EXPECT_EQ(ckpt::find_latest_intact(job.ckpt.dir, grid.world_group()), job.ckpt.dir + "/step_00000002.h5");
}
