// The rank grid and the MPI communicator on 8 ranks (also run on fewer: tests adapt).
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_test_util.hpp"

#include <numeric>
#include <set>
#include <vector>

#include "strata/comm/collectives.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/core/error.hpp"

using namespace strata;
using namespace strata::comm;

namespace {
using test::world_rank;
using test::world_size;
// Every layout of this world size with tp, pp in {1, 2, 4}.
std::vector<GridShape> layouts() {
  std::vector<GridShape> out;
  for (int tp : {1, 2, 4})
    for (int pp : {1, 2, 4})
      if (world_size() % (tp * pp) == 0) out.push_back({tp, pp, world_size() / (tp * pp)});
  return out;
}
}  // namespace

TEST(RankGrid, OrderIsTpFastestThenDpThenPp) {
  const GridShape s{2, 2, 2};
  EXPECT_EQ(global_rank_of(s, {1, 0, 0}), 1);
  EXPECT_EQ(global_rank_of(s, {0, 1, 0}), 2);
  EXPECT_EQ(global_rank_of(s, {0, 0, 1}), 4);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(global_rank_of(s, coord_of(s, r)), r);
}

TEST(RankGrid, LayoutThatDoesNotMatchTheWorldNamesEveryFactor) {
  try {
    resolve_grid(8, 2, 2, 3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tp=2 x pp=2 x dp=3 = 12 ranks, but the job has 8"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(resolve_grid(8, 3, 1, 0), Error);
  EXPECT_EQ(resolve_grid(8, 2, 1, 0).dp, 4);
}

TEST(RankGrid, EachGroupHoldsTheRanksThatShareTheOtherCoordinates) {
  for (const GridShape& s : layouts()) {
    RankGrid grid(MPI_COMM_WORLD, s.tp, s.pp, s.dp);
    const GridCoord c = grid.coord();
    EXPECT_EQ(grid.tp_group().size(), s.tp);
    EXPECT_EQ(grid.dp_group().size(), s.dp);
    EXPECT_EQ(grid.pp_group().size(), s.pp);
    EXPECT_EQ(grid.tp_group().rank(), c.tp_rank);
    EXPECT_EQ(grid.dp_group().rank(), c.dp_rank);
    EXPECT_EQ(grid.pp_group().rank(), c.pp_rank);
    // Gather global ranks over each group and check them against the formula.
    auto members = [&](Communicator& g) {
      std::vector<int> all(std::size_t(g.size()));
      int me = grid.global_rank();
      g.all_gather(&me, all.data(), 1, DType::i32);
      return all;
    };
    const auto tp = members(grid.tp_group()), dp = members(grid.dp_group()), pp = members(grid.pp_group());
    for (int i = 0; i < s.tp; ++i)
      EXPECT_EQ(tp[std::size_t(i)], global_rank_of(s, {i, c.dp_rank, c.pp_rank}));
    for (int i = 0; i < s.dp; ++i)
      EXPECT_EQ(dp[std::size_t(i)], global_rank_of(s, {c.tp_rank, i, c.pp_rank}));
    for (int i = 0; i < s.pp; ++i)
      EXPECT_EQ(pp[std::size_t(i)], global_rank_of(s, {c.tp_rank, c.dp_rank, i}));
    // The embedding group: first and last stage only.
    if (s.pp > 1 && (grid.is_first_stage() || grid.is_last_stage())) {
      ASSERT_NE(grid.embedding_group(), nullptr);
      EXPECT_EQ(grid.embedding_group()->size(), 2);
    } else {
      EXPECT_EQ(grid.embedding_group(), nullptr);
    }
    EXPECT_NE(grid.describe().find("tp " + std::to_string(c.tp_rank) + "/" + std::to_string(s.tp)),
              std::string::npos);
  }
}

TEST(MpiCommunicator, CollectivesGiveTheDefinedResults) {
  RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  Communicator& g = grid.dp_group();
  const int n = g.size(), r = g.rank();
  // all_reduce: sum over ranks of (rank + i)
  std::vector<float> a(100);
  for (int i = 0; i < 100; ++i) a[std::size_t(i)] = float(r + i);
  g.all_reduce(a.data(), a.size());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a[std::size_t(i)], float(n * (n - 1) / 2 + n * i));
  // reduce_scatter: block b of rank q holds q*1000 + b; rank r receives sum_q (q*1000 + r)
  std::vector<double> send(std::size_t(n) * 3), recv(3);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < 3; ++i) send[std::size_t(b * 3 + i)] = r * 1000 + b + 0.25 * i;
  g.reduce_scatter(send.data(), recv.data(), 3, DType::f64);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(recv[std::size_t(i)], 1000.0 * n * (n - 1) / 2 + n * (r + 0.25 * i));
  // all_gather, out of place and in place
  std::vector<std::int32_t> gathered(std::size_t(n) * 2);
  const std::int32_t mine[2] = {r, -r};
  g.all_gather(mine, gathered.data(), 2, DType::i32);
  for (int q = 0; q < n; ++q) {
    EXPECT_EQ(gathered[std::size_t(2 * q)], q);
    EXPECT_EQ(gathered[std::size_t(2 * q + 1)], -q);
  }
  std::vector<std::int32_t> in_place(std::size_t(n), -1);
  in_place[std::size_t(r)] = 10 * r;
  g.all_gather(in_place.data() + r, in_place.data(), 1, DType::i32);
  for (int q = 0; q < n; ++q) EXPECT_EQ(in_place[std::size_t(q)], 10 * q);
  // broadcast from the last rank; max reduction
  std::uint64_t value = r == n - 1 ? 42u : 0u;
  g.broadcast(&value, 1, DType::u64, n - 1);
  EXPECT_EQ(value, 42u);
  double m = r;
  g.all_reduce(&m, 1, ReduceOp::max);
  EXPECT_EQ(m, double(n - 1));
}

// The typed helpers the data pipeline uses: variable-size gathers (rank r gives r + 1
// elements; rank 0 of an even rank gives none when n > 2), exclusive sums and reductions.
TEST(MpiCommunicator, VariableSizeGatherAndExclusiveSumAreInRankOrder) {
  RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  Communicator& g = grid.world_group();
  const int n = g.size(), r = g.rank();
  struct Pair {
    std::uint64_t a, b;
  };
  const int mine = (n > 2 && r == 1) ? 0 : r + 1;
  std::vector<Pair> local;
  for (int i = 0; i < mine; ++i) local.push_back({std::uint64_t(r), std::uint64_t(i)});
  const std::vector<Pair> all = all_gather_vector(g, local);
  std::size_t at = 0;
  for (int q = 0; q < n; ++q) {
    const int theirs = (n > 2 && q == 1) ? 0 : q + 1;
    for (int i = 0; i < theirs; ++i, ++at) {
      ASSERT_LT(at, all.size());
      EXPECT_EQ(all[at].a, std::uint64_t(q));
      EXPECT_EQ(all[at].b, std::uint64_t(i));
    }
  }
  EXPECT_EQ(at, all.size());
  std::uint64_t before = 0;
  for (int q = 0; q < r; ++q) before += (n > 2 && q == 1) ? 0 : q + 1;
  EXPECT_EQ(exclusive_sum(g, std::uint64_t(mine)), before);
  EXPECT_EQ(all_reduce_value<double>(g, double(r), ReduceOp::max), double(n - 1));
  EXPECT_EQ(all_reduce_value<std::uint64_t>(g, 1), std::uint64_t(n));
}

TEST(MpiCommunicator, NonBlockingOperationsOverlapAndRingSendRecvWorks) {
  RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  Communicator& g = grid.world_group();
  const int n = g.size(), r = g.rank();
  std::vector<float> x(1 << 16, 1.0f), y(1 << 10, 2.0f);
  Work wx = g.iall_reduce(x.data(), x.size(), DType::f32, ReduceOp::sum);
  Work wy = g.iall_reduce(y.data(), y.size(), DType::f32, ReduceOp::sum);  // two in flight
  g.wait(wy);
  g.wait(wx);
  EXPECT_FALSE(wx.pending());
  EXPECT_EQ(x.back(), float(n));
  EXPECT_EQ(y.front(), float(2 * n));
  // ring: send to the right, receive from the left
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  int out = r, in = -1;
  Work rs = g.irecv(&in, 1, DType::i32, left, 7);
  Work ss = g.isend(&out, 1, DType::i32, right, 7);
  g.wait(ss);
  g.wait(rs);
  EXPECT_EQ(in, left);
}

TEST(MpiCommunicator, WatchdogNamesTheStuckOperationInsteadOfHanging) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  MpiCommunicator g(dup, "test", world_rank(), 0.3);
  int value = -1;
  Work w;
  if (g.rank() == 0) {
    w = g.irecv(&value, 1, DType::i32, 1, 99);  // rank 1 sends only after the timeout
    try {
      g.wait(w);
      FAIL() << "the watchdog did not fire";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("watchdog: recv on group 'test'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("did not complete within 0.3 s"), std::string::npos) << msg;
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);  // not g.barrier(): rank 1 would itself time out waiting
  if (g.rank() == 1) {
    const int v = 5;
    g.send(&v, 1, DType::i32, 0, 99);
  }
  if (g.rank() == 0) {
    g.wait(w);  // still pending after the throw; completes now
    EXPECT_EQ(value, 5);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(MpiCommunicator, GatherCollectsEveryRankOnTheRootOnly) {
  RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  Communicator& g = grid.world_group();
  const int n = g.size(), r = g.rank();
  for (int root : {0, n - 1}) {
    const std::int32_t mine[2] = {10 * r, -r};
    std::vector<std::int32_t> all(r == root ? std::size_t(2 * n) : 0, -7);
    g.gather(mine, all.data(), 2, DType::i32, root);
    if (r == root)
      for (int q = 0; q < n; ++q) {
        EXPECT_EQ(all[std::size_t(2 * q)], 10 * q);
        EXPECT_EQ(all[std::size_t(2 * q + 1)], -q);
      }
  }
}

// all_to_all: block b of rank q's send buffer (q * 1000 + b * 10 + i, i < 3) arrives as block q
// of rank b's receive buffer, on the whole world and on each cp group of a tp 2 x cp 2 grid
// (the Ulysses context-parallel mode's group); counted as a collective and published as such.
TEST(MpiCommunicator, AllToAllSendsBlockRToRankR) {
  const auto check = [](Communicator& g) {
    const int n = g.size(), r = g.rank();
    std::vector<float> send(std::size_t(n) * 3), recv(std::size_t(n) * 3, -1.0f);
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < 3; ++i) send[std::size_t(b * 3 + i)] = float(r * 1000 + b * 10 + i);
    g.all_to_all(send.data(), recv.data(), 3, DType::f32);
    for (int q = 0; q < n; ++q)
      for (int i = 0; i < 3; ++i) EXPECT_EQ(recv[std::size_t(q * 3 + i)], float(q * 1000 + r * 10 + i));
  };
  RankGrid world(MPI_COMM_WORLD, 1, 1, 0);
  auto& g = static_cast<MpiCommunicator&>(world.dp_group());
  check(g);
  EXPECT_EQ(g.collectives_entered(), 1u);
  if (world_size() % 4 == 0) {
    RankGrid grid(MPI_COMM_WORLD, 2, 1, 0, 600.0, 2);
    ASSERT_EQ(grid.cp_group().size(), 2);
    check(grid.cp_group());
  }
}

TEST(MpiCommunicator, EveryRankPublishesTheCollectivesItEntered) {
  RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  auto& g = static_cast<MpiCommunicator&>(grid.dp_group());
  double x = 1;
  g.all_reduce(&x, 1, DType::f64, ReduceOp::sum);            // 1
  Work w = g.iall_reduce(&x, 1, DType::f64, ReduceOp::sum);  // 2
  g.wait(w);
  g.barrier();                        // 3
  g.broadcast(&x, 1, DType::f64, 0);  // 4
  std::vector<double> all(std::size_t(g.size()));
  g.all_gather(&x, all.data(), 1, DType::f64);  // 5
  g.gather(&x, all.data(), 1, DType::f64, 0);   // 6
  int v = 1;
  if (g.size() > 1) {  // point-to-point is not a collective: not counted
    if (g.rank() == 0) g.send(&v, 1, DType::i32, 1);
    if (g.rank() == 1) g.recv(&v, 1, DType::i32, 0);
  }
  EXPECT_EQ(g.collectives_entered(), 6u);
  MPI_Barrier(MPI_COMM_WORLD);  // every rank has entered all six
  const std::vector<PeerProgress> peers = g.read_progress(10.0);
  if (g.size() == 1) {
    EXPECT_TRUE(peers.empty());  // no peers, no window
    return;
  }
  ASSERT_EQ(peers.size(), std::size_t(g.size()));
  for (int q = 0; q < g.size(); ++q) {
    const PeerProgress& p = peers[std::size_t(q)];
    EXPECT_TRUE(p.read);
    EXPECT_EQ(p.group_rank, q);
    EXPECT_EQ(p.global_rank, q);  // tp 1, pp 1: the dp group is the world in order
    EXPECT_EQ(p.entered, 6u);
    EXPECT_EQ(p.last, CollectiveKind::gather);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(MpiCommunicator, ATimedOutCollectiveNamesTheRankThatHasNotArrived) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  MpiCommunicator g(dup, "test", world_rank(), 0.5);
  const int late = g.size() - 1;  // joins the all-reduce only after everyone else timed out
  double x = 1;
  Work w;
  if (g.rank() != late) w = g.iall_reduce(&x, 1, DType::f64, ReduceOp::sum);
  MPI_Barrier(MPI_COMM_WORLD);  // every other rank has entered: only `late` is missing
  if (g.rank() != late) {
    try {
      g.wait(w);
      ADD_FAILURE() << "the watchdog did not fire";
    } catch (const Error& e) {
      const std::string msg = e.what();
      const std::string others = std::to_string(g.size() - 1);
      EXPECT_NE(msg.find("watchdog: all_reduce #1 on group 'test' (" + std::to_string(g.size()) +
                         " ranks; this is test rank " + std::to_string(g.rank()) + ")"),
                std::string::npos)
          << msg;
      EXPECT_NE(
          msg.find("not arrived: 1 of the " + others + " other ranks (test rank " + std::to_string(late) +
                   " = global rank " + std::to_string(late) + ", last entered none yet)"),
          std::string::npos)
          << msg;
      EXPECT_NE(msg.find("arrived: " + std::to_string(g.size() - 2)), std::string::npos) << msg;
      EXPECT_NE(msg.find("did not complete within 0.5 s"), std::string::npos) << msg;
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (g.rank() == late) w = g.iall_reduce(&x, 1, DType::f64, ReduceOp::sum);
  g.wait(w);  // still pending after the throw; completes now
  EXPECT_EQ(x, double(g.size()));
  MPI_Barrier(MPI_COMM_WORLD);
}
