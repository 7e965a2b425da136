// The per-rank peak for MFU on several ranks of one host (train/peak.hpp): every rank agrees,
// the host's ranks are counted and share one probe (run by the host's lowest rank), and a
// configured peak or cluster file replaces the probe.
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "mpi_test_util.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/cluster.hpp"
#include "strata/train/peak.hpp"

namespace strata {
namespace {

// The same double on every rank (bitwise), as the collective resolution promises.
void expect_same_on_all_ranks(double v) {
  double lo = v, hi = v;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
}

TEST(Peak, MeasuredOncePerHostAndSharedByItsRanks) {
  // mpiexec -n N on one machine: one host, N ranks on it, rank 0 measures for all.
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  const train::PeakFlops p = train::resolve_peak_flops(config::HardwareConfig{}, grid);
  const int n = test::world_size();
  EXPECT_EQ(p.ranks_on_host, n);
  EXPECT_EQ(p.host_lead, 0);
  EXPECT_GT(p.tflops_per_rank(), 0.0);
  expect_same_on_all_ranks(p.tflops_per_rank());
  EXPECT_NE(p.source().find("measured by rank 0"), std::string::npos) << p.source();
  EXPECT_NE(p.source().find("shared by the " + std::to_string(n) + " ranks on the host"), std::string::npos)
      << p.source();
}

TEST(Peak, ConfiguredPeakWinsWithoutMeasuring) {
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  config::HardwareConfig hw;
  hw.peak_tflops = 0.5;
  hw.cluster = "local";  // also set: the configured peak still wins
  const train::PeakFlops p = train::resolve_peak_flops(hw, grid);
  EXPECT_DOUBLE_EQ(p.tflops_per_rank(), 0.5);
  EXPECT_EQ(p.source(), "hardware.peak_tflops");
}

TEST(Peak, ClusterFileNodePeakIsSharedByTheHostsRanks) {
  // local.yaml: gpus_per_node cores of peak_tflops_fp32 each; N ranks on this host share them.
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  config::HardwareConfig hw;
  hw.cluster = std::string(STRATA_SOURCE_DIR) + "/configs/clusters/local.yaml";
  const config::ClusterConfig local = config::load_cluster_config(hw.cluster);
  const train::PeakFlops p = train::resolve_peak_flops(hw, grid);
  EXPECT_NEAR(p.tflops_per_rank(), local.peak_tflops_fp32 * local.gpus_per_node / test::world_size(), 1e-12);
  EXPECT_NE(p.source().find("cluster file"), std::string::npos) << p.source();
}

}  // namespace
}  // namespace strata
