// StragglerMonitor on 8 ranks (tp2 x pp2 x dp2): one gather of every rank's means, the slow
// rank named on rank 0 with its coordinates, the means restarted after each gather.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_test_util.hpp"
#include "strata/train/stragglers.hpp"

using namespace strata;

TEST(StragglerMonitor, RankZeroNamesTheSlowRankWithItsCoordinates) {
  if (test::world_size() != 8) GTEST_SKIP() << "needs 8 ranks";
  comm::RankGrid grid(MPI_COMM_WORLD, 2, 2, 2);
  train::StragglerMonitor monitor(grid, 2);
  const int me = grid.global_rank();
  for (int step = 0; step < 4; ++step)  // rank 6 computes 2x its stage's usual 10 ms on average
    monitor.add_step(40, me == 6 ? 10 + 20 * (step % 2) : 10, me == 6 ? 10 : 30);
  const train::StragglerReport r = monitor.gather(4);
  EXPECT_EQ(r.step, 4);
  EXPECT_EQ(r.steps, 4);
  if (me != 0) {
    EXPECT_TRUE(r.slowest.empty());
  } else {
    ASSERT_EQ(r.slowest.size(), 2u);
    EXPECT_EQ(r.slowest[0].global_rank, 6);
    EXPECT_EQ(r.slowest[0].coord.tp_rank, 0);
    EXPECT_EQ(r.slowest[0].coord.dp_rank, 1);
    EXPECT_EQ(r.slowest[0].coord.pp_rank, 1);
    EXPECT_DOUBLE_EQ(r.slowest[0].compute_ms, 20.0);
    EXPECT_DOUBLE_EQ(r.slowest[0].wait_ms, 10.0);
    EXPECT_DOUBLE_EQ(r.slowest[0].slowdown, 2.0);
    EXPECT_NE(r.log_line().find("rank 6 (tp 0/2, dp 1/2, pp 1/2)"), std::string::npos) << r.log_line();
  }
  // The next interval starts from nothing: now rank 3 is the slow one.
  monitor.add_step(40, me == 3 ? 30 : 10, 0);
  const train::StragglerReport next = monitor.gather(5);
  EXPECT_EQ(next.steps, 1);
  if (me == 0) {
    ASSERT_FALSE(next.slowest.empty());
    EXPECT_EQ(next.slowest[0].global_rank, 3);
    EXPECT_DOUBLE_EQ(next.slowest[0].slowdown, 3.0);
  }
}
