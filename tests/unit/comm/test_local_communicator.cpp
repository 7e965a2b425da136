// LocalCommunicator: the one-process group is the identity for every collective, so code
// written against Communicator (the data pipeline) runs as a plain process without MPI.
#include <gtest/gtest.h>

#include <vector>

#include "strata/comm/collectives.hpp"
#include "strata/comm/local_communicator.hpp"
#include "strata/core/error.hpp"

using namespace strata;
using namespace strata::comm;

TEST(LocalCommunicator, CollectivesOverOneRankAreTheIdentity) {
  LocalCommunicator g("solo");
  EXPECT_EQ(g.rank(), 0);
  EXPECT_EQ(g.size(), 1);
  std::vector<float> a = {1, 2, 3};
  g.all_reduce(a.data(), a.size());
  EXPECT_EQ(a, (std::vector<float>{1, 2, 3}));
  std::vector<double> recv(2);
  const double send[2] = {4, 5};
  g.reduce_scatter(send, recv.data(), 2, DType::f64);
  EXPECT_EQ(recv, (std::vector<double>{4, 5}));
  std::vector<std::int32_t> gathered(2);
  const std::int32_t mine[2] = {7, 8};
  g.all_gather(mine, gathered.data(), 2, DType::i32);
  EXPECT_EQ(gathered, (std::vector<std::int32_t>{7, 8}));
  Work w = g.iall_reduce(a.data(), a.size(), DType::f32, ReduceOp::max);
  EXPECT_FALSE(w.pending());
  g.wait(w);
  g.barrier();
  const std::vector<std::uint32_t> v = {1, 2, 3};
  EXPECT_EQ(all_gather_vector(g, v), v);
  EXPECT_EQ(exclusive_sum(g, 17), 0u);
  EXPECT_EQ(all_reduce_value<double>(g, 2.5, ReduceOp::max), 2.5);
}

TEST(LocalCommunicator, PointToPointHasNoPeerAndSaysSo) {
  LocalCommunicator g("solo");
  float x = 0;
  try {
    g.send(&x, 1, DType::f32, 1);
    FAIL() << "send to a missing peer did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only one rank"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.broadcast(&x, 1, DType::f32, 1), Error);
}
