// NcclCommunicator against MpiCommunicator: every collective and dtype on device buffers,
// compared with the same operation done by the MPI communicator on host copies; the stream
// semantics of the blocking and non-blocking forms; moves; one communicator per grid
// dimension.
//
// ctest runs it with one rank (label cuda; every test skips where no GPU is usable). With G
// GPUs, run it by hand on G ranks:   mpiexec -n G build/tests/mpi_nccl
// NCCL refuses two ranks of one communicator on the same GPU, so give every rank its own GPU
// (select_device takes local_rank % device_count; with more ranks than GPUs all tests skip).
// The values are small integers: exact in bf16 and in any summation order, so NCCL's results
// must equal MPI's exactly.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "../cuda/cuda_test_util.hpp"
#include "mpi_test_util.hpp"
#include "strata/comm/nccl_communicator.hpp"
#include "strata/comm/nccl_types.hpp"  // reduce_op_name
#include "strata/comm/rank_grid.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/kernels/cuda/runtime.hpp"

using namespace strata;
using namespace strata::comm;
using kernels::cuda::bf16;
using kernels::cuda::Stream;
using test::DeviceBuffer;

namespace {

// Holds a stream at a host function until the test opens it (at most 10 s: a failing test
// must not hang); `passed` counts the host functions enqueued behind it that have run.
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<int> passed{0};
  static void CUDART_CB hold(void* p) {
    auto* g = static_cast<Gate*>(p);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!g->open.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  static void CUDART_CB pass(void* p) { static_cast<Gate*>(p)->passed.fetch_add(1); }
};

// Host element type of a dtype on the device (bf16 is reduced on the host in float).
template <class T>
struct Host {
  using type = T;
  static constexpr DType dtype = dtype_of<T>();
};
template <>
struct Host<bf16> {
  using type = float;
  static constexpr DType dtype = DType::f32;
};

template <class T>
T from_int(std::int64_t v) {
  if constexpr (std::is_same_v<T, bf16>)
    return __float2bfloat16(float(v));
  else
    return T(v);
}
template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16>)
    return double(__bfloat162float(v));
  else
    return double(v);
}

// A small integer per (rank, element), non-negative for unsigned types.
std::int64_t value(int rank, std::size_t i, bool is_unsigned) {
  const std::int64_t v = (std::int64_t(rank) * 7 + std::int64_t(i) * 3) % 11;
  return is_unsigned ? v : v - 5;
}

template <class T>
std::vector<T> values(int rank, std::size_t n, std::size_t offset = 0) {
  std::vector<T> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = from_int<T>(value(rank, i + offset, std::is_unsigned_v<T>));
  return out;
}
template <class T>
std::vector<typename Host<T>::type> host_copy(const std::vector<T>& x) {
  std::vector<typename Host<T>::type> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = typename Host<T>::type(to_double(x[i]));
  return out;
}
template <class T, class H>
::testing::AssertionResult same(const std::vector<T>& got, const std::vector<H>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes " << got.size() << " vs " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i)
    if (to_double(got[i]) != double(want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": NCCL " << to_double(got[i]) << ", MPI " << double(want[i]);
  return ::testing::AssertionSuccess();
}

// Every rank skips together: a rank without a device would leave the others waiting in
// ncclCommInitRank.
class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grid_ = std::make_unique<RankGrid>(MPI_COMM_WORLD, 1, 1, test::world_size(), 120.0);
    std::string why;
    int ok = kernels::cuda::cuda_device_available(&why) ? 1 : 0;
    if (ok) {
      try {
        kernels::cuda::select_device(grid_->local_rank(), grid_->local_size());
      } catch (const Error& e) {
        ok = 0;
        why = e.what();
      }
    }
    int all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
      GTEST_SKIP() << "NCCL tests need one usable CUDA device per rank: "
                   << (ok ? std::string("another rank has none") : why);
    compute_ = std::make_unique<Stream>();
  }

  std::unique_ptr<NcclCommunicator> make(MPI_Comm group, const char* name) {
    return std::make_unique<NcclCommunicator>(group, name, compute_->get(), grid_->describe(), 60.0);
  }
  int rank() const { return grid_->global_rank(); }
  int size() const { return grid_->world_size(); }
  Communicator& mpi() { return grid_->dp_group(); }  // the world, as the dp dimension
  cudaStream_t compute() const { return compute_->get(); }

  template <class T>
  void check_all_reduce(NcclCommunicator& nccl, DType dtype, ReduceOp op, bool non_blocking) {
    const std::size_t n = 1037;
    const std::vector<T> mine = values<T>(rank(), n);
    DeviceBuffer<T> dev(mine);
    if (non_blocking) {
      Work w = nccl.iall_reduce(dev.get(), n, dtype, op);
      nccl.wait(w);
    } else {
      nccl.all_reduce(dev.get(), n, dtype, op);
    }
    compute_->synchronize();
    auto want = host_copy(mine);
    mpi().all_reduce(want.data(), n, Host<T>::dtype, op);
    EXPECT_TRUE(same(dev.download(), want))
        << dtype_name(dtype) << " " << reduce_op_name(op) << (non_blocking ? " (non-blocking)" : "");
  }

  std::unique_ptr<RankGrid> grid_;
  std::unique_ptr<Stream> compute_;
};

TEST_F(NcclTest, AllReduceMatchesMpiForEveryDtypeAndOp) {
  auto nccl = make(grid_->dp_handle(), "dp");
  EXPECT_EQ(nccl->size(), size());
  EXPECT_EQ(nccl->rank(), mpi().rank());
  EXPECT_EQ(nccl->name(), "dp");
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min})
    for (bool nb : {false, true}) {
      check_all_reduce<float>(*nccl, DType::f32, op, nb);
      check_all_reduce<double>(*nccl, DType::f64, op, nb);
      check_all_reduce<bf16>(*nccl, DType::bf16, op, nb);
      check_all_reduce<std::int32_t>(*nccl, DType::i32, op, nb);
      check_all_reduce<std::uint32_t>(*nccl, DType::u32, op, nb);
      check_all_reduce<std::uint64_t>(*nccl, DType::u64, op, nb);
    }
}

TEST_F(NcclTest, ReduceScatterMatchesMpi) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = 301;  // per rank
  const std::size_t total = n * std::size_t(size());
  {  // f32, blocking and non-blocking
    const auto mine = values<float>(rank(), total);
    std::vector<float> want(n);
    mpi().reduce_scatter(mine.data(), want.data(), n, DType::f32, ReduceOp::sum);
    DeviceBuffer<float> send(mine), recv(n), recv2(n);
    nccl->reduce_scatter(send.get(), recv.get(), n, DType::f32, ReduceOp::sum);
    Work w = nccl->ireduce_scatter(send.get(), recv2.get(), n, DType::f32, ReduceOp::sum);
    nccl->wait(w);
    EXPECT_TRUE(same(recv.download(), want));
    EXPECT_TRUE(same(recv2.download(), want));
  }
  {  // bf16 max, reference in float
    const auto mine = values<bf16>(rank(), total);
    auto host = host_copy(mine);
    std::vector<float> want(n);
    mpi().reduce_scatter(host.data(), want.data(), n, DType::f32, ReduceOp::max);
    DeviceBuffer<bf16> send(mine), recv(n);
    nccl->reduce_scatter(send.get(), recv.get(), n, DType::bf16, ReduceOp::max);
    EXPECT_TRUE(same(recv.download(), want));
  }
}

TEST_F(NcclTest, AllGatherMatchesMpiIncludingInPlace) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = 257;
  const std::size_t total = n * std::size_t(size());
  const auto mine = values<std::uint64_t>(rank(), n);
  std::vector<std::uint64_t> want(total);
  mpi().all_gather(mine.data(), want.data(), n, DType::u64);
  DeviceBuffer<std::uint64_t> send(mine), recv(total), recv2(total);
  nccl->all_gather(send.get(), recv.get(), n, DType::u64);
  Work w = nccl->iall_gather(send.get(), recv2.get(), n, DType::u64);
  nccl->wait(w);
  EXPECT_TRUE(same(recv.download(), want));
  EXPECT_TRUE(same(recv2.download(), want));
  // In place: this rank's block of the receive buffer is the send buffer.
  std::vector<float> blocks(total, -99.0f);
  const auto mine_f = values<float>(rank(), n);
  std::copy(mine_f.begin(), mine_f.end(), blocks.begin() + std::ptrdiff_t(std::size_t(rank()) * n));
  std::vector<float> want_f(total);
  mpi().all_gather(mine_f.data(), want_f.data(), n, DType::f32);
  DeviceBuffer<float> inplace(blocks);
  nccl->all_gather(inplace.get() + std::size_t(rank()) * n, inplace.get(), n, DType::f32);
  EXPECT_TRUE(same(inplace.download(), want_f));
}

TEST_F(NcclTest, BroadcastFromEveryRootMatchesMpi) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = 129;
  for (int root = 0; root < size(); ++root) {
    auto want = values<double>(rank(), n);
    mpi().broadcast(want.data(), n, DType::f64, root);
    DeviceBuffer<double> dev(values<double>(rank(), n));
    nccl->broadcast(dev.get(), n, DType::f64, root);
    EXPECT_TRUE(same(dev.download(), want)) << "root " << root;
    DeviceBuffer<std::int32_t> dev_i(values<std::int32_t>(rank(), n));
    Work w = nccl->ibroadcast(dev_i.get(), n, DType::i32, root);
    nccl->wait(w);
    EXPECT_TRUE(same(dev_i.download(), values<std::int32_t>(root, n))) << "root " << root;
  }
}

// Everyone isend(next) then irecv(prev): issued one by one this deadlocks in NCCL; the
// communicator groups consecutive point-to-point calls, so it works like MPI (on one rank the
// ring is a send to itself). Then blocking send/recv between pairs of ranks.
TEST_F(NcclTest, SendRecvRingAndPairs) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = 1000;
  const int next = (rank() + 1) % size(), prev = (rank() + size() - 1) % size();
  DeviceBuffer<float> out(values<float>(rank(), n)), in(n);
  Work s = nccl->isend(out.get(), n, DType::f32, next, 7);
  Work r = nccl->irecv(in.get(), n, DType::f32, prev, 7);
  nccl->wait(r);
  nccl->wait(s);
  compute_->synchronize();
  EXPECT_TRUE(same(in.download(), values<float>(prev, n)));
  // Pairs (0,1), (2,3)...: the lower rank sends first; blocking forms (isend + wait).
  const int partner = rank() ^ 1;
  if (partner < size()) {
    DeviceBuffer<bf16> mine(values<bf16>(rank(), n)), theirs(n);
    if (rank() < partner) {
      nccl->send(mine.get(), n, DType::bf16, partner);
      nccl->recv(theirs.get(), n, DType::bf16, partner);
    } else {
      nccl->recv(theirs.get(), n, DType::bf16, partner);
      nccl->send(mine.get(), n, DType::bf16, partner);
    }
    compute_->synchronize();
    EXPECT_TRUE(same(theirs.download(), host_copy(values<bf16>(partner, n))));
  }
}

// The non-blocking form starts only after the compute stream's current point and the compute
// stream waits for it at wait(): a host function holds the compute stream before the input is
// copied in; while it holds, the operation cannot have completed.
TEST_F(NcclTest, NonBlockingFormsOrderAgainstTheComputeStream) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = std::size_t(1) << 22;  // 16 MiB: copies that take a while
  MemoryPlan staging("nccl test staging");
  const auto in_i = staging.add("in", {std::int64_t(n)}, DType::f32, "test");
  const auto out_i = staging.add("out", {std::int64_t(n)}, DType::f32, "test");
  kernels::cuda::allocate_pinned(staging);
  float* in = staging.data<float>(in_i);
  float* out = staging.data<float>(out_i);
  for (std::size_t i = 0; i < n; ++i) in[i] = float(value(rank(), i, false));
  DeviceBuffer<float> dev(n);
  // Warm-up: NCCL connects peers lazily at a communicator's first collective (host-side work
  // that should not run while the compute stream is held).
  nccl->all_reduce(dev.get(), n, DType::f32, ReduceOp::sum);
  compute_->synchronize();
  Gate gate;
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(compute(), Gate::hold, &gate));
  STRATA_CUDA_CHECK(cudaMemcpyAsync(dev.get(), in, n * sizeof(float), cudaMemcpyHostToDevice, compute()));
  Work w = nccl->iall_reduce(dev.get(), n, DType::f32, ReduceOp::sum);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(nccl->test(w));  // held behind the compute stream's gate
  EXPECT_TRUE(w.pending());
  gate.open = true;
  nccl->wait(w);
  EXPECT_FALSE(w.pending());
  STRATA_CUDA_CHECK(cudaMemcpyAsync(out, dev.get(), n * sizeof(float), cudaMemcpyDeviceToHost, compute()));
  compute_->synchronize();
  std::vector<float> want(in, in + n);
  mpi().all_reduce(want.data(), n, DType::f32, ReduceOp::sum);
  EXPECT_TRUE(same(std::vector<float>(out, out + n), want));

  // test() until done; then the result is final without any stream waiting for it.
  DeviceBuffer<float> gathered(n * std::size_t(size()));
  Work g = nccl->iall_gather(dev.get(), gathered.get(), n, DType::f32);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool done = false;
  while (!(done = nccl->test(g)) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(done);
  std::vector<float> got(n * std::size_t(size()));
  STRATA_CUDA_CHECK(
      cudaMemcpy(got.data(), gathered.get(), got.size() * sizeof(float), cudaMemcpyDeviceToHost));
  for (int r = 0; r < size(); ++r)
    ASSERT_TRUE(same(std::vector<float>(got.begin() + std::ptrdiff_t(std::size_t(r) * n),
                                        got.begin() + std::ptrdiff_t(std::size_t(r + 1) * n)),
                     want))
        << "block " << r;
}

// The blocking form is enqueued on the compute stream and returns at once: the host gets
// back while the compute stream is still held, and the result is there for what follows.
TEST_F(NcclTest, BlockingFormRunsInComputeStreamOrderWithoutBlockingTheHost) {
  auto nccl = make(grid_->dp_handle(), "dp");
  const std::size_t n = 4096;
  // The input in pinned memory: a host-to-device cudaMemcpyAsync from pageable memory "may
  // synchronize with the stream" (CUDA API synchronization behavior), which here would block
  // the host behind the gate it is about to open.
  MemoryPlan staging("nccl test staging");
  const auto in_i = staging.add("in", {std::int64_t(n)}, DType::f32, "test");
  kernels::cuda::allocate_pinned(staging);
  float* in = staging.data<float>(in_i);
  const auto mine = values<float>(rank(), n);
  std::copy(mine.begin(), mine.end(), in);
  DeviceBuffer<float> dev(n);
  std::vector<float> out(n);
  // Warm-up: NCCL connects peers lazily at a communicator's first collective (host-side work
  // that should not run while the compute stream is held).
  nccl->all_reduce(dev.get(), n, DType::f32, ReduceOp::max);
  compute_->synchronize();
  Gate gate;
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(compute(), Gate::hold, &gate));
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(compute(), Gate::pass, &gate));
  STRATA_CUDA_CHECK(cudaMemcpyAsync(dev.get(), in, n * sizeof(float), cudaMemcpyHostToDevice, compute()));
  nccl->all_reduce(dev.get(), n, DType::f32, ReduceOp::max);
  EXPECT_EQ(gate.passed.load(), 0);  // returned while the compute stream is held
  gate.open = true;
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(out.data(), dev.get(), n * sizeof(float), cudaMemcpyDeviceToHost, compute()));
  compute_->synchronize();
  auto want = mine;
  mpi().all_reduce(want.data(), n, DType::f32, ReduceOp::max);
  EXPECT_TRUE(same(out, want));
  nccl->barrier();
  nccl->synchronize();
}

TEST_F(NcclTest, MovedCommunicatorKeepsWorking) {
  auto a = make(grid_->dp_handle(), "dp");
  check_all_reduce<float>(*a, DType::f32, ReduceOp::sum, false);
  NcclCommunicator b(std::move(*a));
  EXPECT_EQ(a->size(), 0);  // moved-from
  EXPECT_EQ(b.size(), size());
  EXPECT_EQ(b.name(), "dp");
  check_all_reduce<float>(b, DType::f32, ReduceOp::sum, true);
  a.reset();  // destroying the moved-from object touches nothing
  check_all_reduce<double>(b, DType::f64, ReduceOp::min, false);
}

// One NCCL communicator per grid dimension, each from that dimension's MPI handle.
TEST_F(NcclTest, OneCommunicatorPerGridDimension) {
  const int tp = size() % 2 == 0 ? 2 : 1;
  RankGrid grid(MPI_COMM_WORLD, tp, 1, size() / tp, 120.0);
  auto tp_nccl = std::make_unique<NcclCommunicator>(grid.tp_handle(), "tp", compute(), grid.describe(), 60.0);
  auto dp_nccl = std::make_unique<NcclCommunicator>(grid.dp_handle(), "dp", compute(), grid.describe(), 60.0);
  EXPECT_EQ(tp_nccl->size(), grid.tp_group().size());
  EXPECT_EQ(tp_nccl->rank(), grid.tp_group().rank());
  EXPECT_EQ(dp_nccl->size(), grid.dp_group().size());
  EXPECT_EQ(dp_nccl->rank(), grid.dp_group().rank());
  struct Case {
    NcclCommunicator* nccl;
    Communicator* mpi;
  };
  for (Case c : {Case{tp_nccl.get(), &grid.tp_group()}, Case{dp_nccl.get(), &grid.dp_group()}}) {
    std::vector<std::int32_t> mine(8, grid.global_rank() + 1), want = mine;
    c.mpi->all_reduce(want.data(), want.size(), DType::i32, ReduceOp::sum);
    DeviceBuffer<std::int32_t> dev(mine);
    c.nccl->all_reduce(dev.get(), mine.size(), DType::i32, ReduceOp::sum);
    EXPECT_TRUE(same(dev.download(), want)) << c.nccl->name();
  }
}

TEST_F(NcclTest, ErrorsNameTheOperationAndTheGroup) {
  auto nccl = make(grid_->dp_handle(), "dp");
  DeviceBuffer<std::uint16_t> tokens(16);
  try {
    nccl->all_reduce(tokens.get(), 16, DType::u16, ReduceOp::sum);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("all_reduce on group dp"), std::string::npos) << what;
    EXPECT_NE(what.find("u16"), std::string::npos) << what;
  }
  // The request pool is fixed: one operation past max_pending is refused, the earlier ones work.
  constexpr int kMax = NcclCommunicator::max_pending;
  DeviceBuffer<float> x(std::size_t(kMax) * 4);
  std::vector<Work> pending;
  for (int i = 0; i < kMax; ++i)
    pending.push_back(nccl->iall_reduce(x.get() + 4 * i, 4, DType::f32, ReduceOp::sum));
  EXPECT_THROW(nccl->iall_reduce(x.get(), 4, DType::f32, ReduceOp::sum), Error);
  for (Work& w : pending) nccl->wait(w);
  Work again = nccl->iall_reduce(x.get(), 4, DType::f32, ReduceOp::sum);
  Work copy = again;
  nccl->wait(again);
  EXPECT_THROW(nccl->wait(copy), Error);  // waited for twice
  EXPECT_EQ(NcclCommunicator::version().rfind("2.", 0), 0u) << NcclCommunicator::version();
  nccl->synchronize();
}

}  // namespace
