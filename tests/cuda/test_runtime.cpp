// The GPU runtime (streams, events, device memory for MemoryPlan, device choice) and the
// host-side NCCL type mapping. The HostLogic tests need no device and run everywhere CUDA is
// compiled in; the rest derive from CudaTest and skip without a GPU.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cuda_test_util.hpp"
#include "strata/comm/nccl_communicator.hpp"
#include "strata/comm/nccl_types.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/kernels/cuda/runtime.hpp"

using namespace strata;
using namespace strata::kernels::cuda;

namespace {

// ---- host logic (no device) -------------------------------------------------------------

TEST(RuntimeHostLogic, ChooseDeviceFollowsTheBindingRules) {
  // One visible device (Slurm's per-task binding): always 0, whatever the local rank.
  EXPECT_EQ(choose_device(3, 4, 1, true), 0);
  // Round-robin over the node's devices.
  EXPECT_EQ(choose_device(0, 4, 4, false), 0);
  EXPECT_EQ(choose_device(3, 4, 4, false), 3);
  EXPECT_EQ(choose_device(5, 8, 8, false), 5);
  EXPECT_EQ(choose_device(1, 2, 4, false), 1);
  // More ranks than devices: an error naming both numbers, unless CUDA_VISIBLE_DEVICES says
  // the sharing is intended.
  try {
    choose_device(2, 6, 4, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("6 ranks on this node but only 4 CUDA device"), std::string::npos) << what;
  }
  EXPECT_EQ(choose_device(5, 6, 4, true), 1);
  EXPECT_THROW(choose_device(0, 1, 0, false), Error);  // no device
  EXPECT_THROW(choose_device(2, 2, 4, false), Error);  // local rank out of range
}

TEST(RuntimeHostLogic, NcclTypesCoverTheCommunicatedDtypes) {
  using comm::nccl_type;
  EXPECT_EQ(nccl_type(DType::f32), ncclFloat32);
  EXPECT_EQ(nccl_type(DType::f64), ncclFloat64);
  EXPECT_EQ(nccl_type(DType::bf16), ncclBfloat16);
  EXPECT_EQ(nccl_type(DType::i32), ncclInt32);
  EXPECT_EQ(nccl_type(DType::u32), ncclUint32);
  EXPECT_EQ(nccl_type(DType::u64), ncclUint64);
  try {
    nccl_type(DType::u16);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("u16"), std::string::npos) << e.what();
  }
  EXPECT_EQ(comm::nccl_op(comm::ReduceOp::sum), ncclSum);
  EXPECT_EQ(comm::nccl_op(comm::ReduceOp::max), ncclMax);
  EXPECT_EQ(comm::nccl_op(comm::ReduceOp::min), ncclMin);
  EXPECT_STREQ(comm::reduce_op_name(comm::ReduceOp::max), "max");
}

TEST(RuntimeHostLogic, NcclVersionStringDecodesTheVersionCode) {
  EXPECT_EQ(comm::nccl_version_string(22809), "2.28.9");
  EXPECT_EQ(comm::nccl_version_string(21903), "2.19.3");
  // The library this binary links: at least the header's major version.
  EXPECT_EQ(comm::NcclCommunicator::version().rfind(std::to_string(NCCL_MAJOR) + ".", 0), 0u)
      << comm::NcclCommunicator::version();
}

// ---- streams and events -----------------------------------------------------------------

using RuntimeTest = test::CudaTest;

TEST_F(RuntimeTest, StreamsAreNonBlockingAndHighPriorityUsesTheGreatestPriority) {
  int least = 0, greatest = 0;
  STRATA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  Stream normal, high(true);
  unsigned flags = 0;
  int priority = 1;
  STRATA_CUDA_CHECK(cudaStreamGetFlags(normal.get(), &flags));
  EXPECT_EQ(flags, unsigned(cudaStreamNonBlocking));
  STRATA_CUDA_CHECK(cudaStreamGetPriority(normal.get(), &priority));
  EXPECT_EQ(priority, 0);
  STRATA_CUDA_CHECK(cudaStreamGetPriority(high.get(), &priority));
  EXPECT_EQ(priority, greatest);
  high.synchronize();
}

TEST_F(RuntimeTest, StreamAndEventMovesTransferTheHandle) {
  Stream a;
  cudaStream_t handle = a.get();
  ASSERT_NE(handle, nullptr);
  Stream b(std::move(a));
  EXPECT_EQ(a.get(), nullptr);
  EXPECT_EQ(b.get(), handle);
  Stream c;
  c = std::move(b);  // c's old stream is destroyed, b's moves in
  EXPECT_EQ(c.get(), handle);
  EXPECT_EQ(b.get(), nullptr);

  Event e;
  cudaEvent_t ev = e.get();
  Event f(std::move(e));
  EXPECT_EQ(e.get(), nullptr);
  EXPECT_EQ(f.get(), ev);
  Event g;
  g = std::move(f);
  EXPECT_EQ(g.get(), ev);
  g.record(c.get());
  g.synchronize();
  EXPECT_TRUE(g.done());
}

// A host function enqueued on a stream that holds the stream until the test opens the gate
// (or 10 s pass, so a failing test cannot hang), and one that notes what it saw.
struct Gate {
  std::atomic<bool> open{false};
  static void CUDART_CB hold(void* p) {
    auto* g = static_cast<Gate*>(p);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!g->open.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};
struct Flag {
  std::atomic<int> value{0};
  std::atomic<int> seen{-1};
  static void CUDART_CB set(void* p) { static_cast<Flag*>(p)->value.store(1); }
  static void CUDART_CB look(void* p) {
    auto* f = static_cast<Flag*>(p);
    f->seen.store(f->value.load());
  }
};

TEST_F(RuntimeTest, EventOrdersWorkBetweenTwoStreams) {
  Stream producer, consumer;
  Gate gate;
  Flag flag;
  Event ready;
  // producer: [gate] [set flag] (ready); consumer: wait(ready) [look at flag]
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(producer.get(), Gate::hold, &gate));
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(producer.get(), Flag::set, &flag));
  ready.record(producer.get());
  ready.wait_on(consumer.get());
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(consumer.get(), Flag::look, &flag));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(ready.done());       // the producer is held at the gate
  EXPECT_EQ(flag.seen.load(), -1);  // so the consumer has not run either
  gate.open = true;
  consumer.synchronize();
  EXPECT_TRUE(ready.done());
  EXPECT_EQ(flag.seen.load(), 1);  // the consumer ran after the producer's flag
}

TEST_F(RuntimeTest, TimingEventsMeasureAndPlainEventsRefuse) {
  Stream s;
  Event start(true), stop(true), plain;
  start.record(s.get());
  Gate gate;
  STRATA_CUDA_CHECK(cudaLaunchHostFunc(s.get(), Gate::hold, &gate));
  stop.record(s.get());
  plain.record(s.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  gate.open = true;
  stop.synchronize();
  EXPECT_GE(stop.elapsed_ms_since(start), 20.0f);
  EXPECT_THROW(plain.elapsed_ms_since(start), Error);  // created with cudaEventDisableTiming
}

// ---- memory -----------------------------------------------------------------------------

TEST_F(RuntimeTest, AllocateOnDeviceGivesZeroedDeviceViews) {
  MemoryPlan plan("device plan");
  const auto a = plan.add("a", {1000}, DType::f32, "step");
  const auto b = plan.add("b", {3, 7}, DType::bf16, "persistent");
  allocate_on_device(plan);
  ASSERT_TRUE(plan.allocated());
  for (auto i : {a, b}) {
    const Tensor t = plan.tensor(i);
    EXPECT_EQ(t.device(), Device::cuda);
    cudaPointerAttributes attr{};
    STRATA_CUDA_CHECK(cudaPointerGetAttributes(&attr, t.raw()));
    EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw()) % 64, 0u);
  }
  std::vector<unsigned char> host(plan.total_bytes(), 0xff);
  STRATA_CUDA_CHECK(cudaMemcpy(host.data(), plan.tensor(a).raw(), host.size(), cudaMemcpyDeviceToHost));
  for (unsigned char byte : host) ASSERT_EQ(byte, 0);
  EXPECT_THROW(allocate_on_device(plan), Error);  // allocated twice
}

TEST_F(RuntimeTest, AllocateOnDeviceThatDoesNotFitNamesThePlanAndTheFreeMemory) {
  MemoryPlan plan("huge plan");
  plan.add("x", {std::int64_t(1) << 48}, DType::f32, "step");  // 1 PiB
  try {
    allocate_on_device(plan);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("huge plan"), std::string::npos) << what;
    EXPECT_NE(what.find("1024.00 TiB"), std::string::npos) << what;
    EXPECT_NE(what.find(" free of "), std::string::npos) << what;
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // the failure does not stick to later calls
  EXPECT_FALSE(plan.allocated());
}

TEST_F(RuntimeTest, AllocatePinnedGivesZeroedHostViews) {
  MemoryPlan plan("staging");
  const auto a = plan.add("losses", {16}, DType::f32, "step");
  allocate_pinned(plan);
  const Tensor t = plan.tensor(a);
  EXPECT_EQ(t.device(), Device::cpu);
  cudaPointerAttributes attr{};
  STRATA_CUDA_CHECK(cudaPointerGetAttributes(&attr, t.data<float>()));
  EXPECT_EQ(attr.type, cudaMemoryTypeHost);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST_F(RuntimeTest, DeviceMemoryInfoAndSelectDevice) {
  const auto [free_bytes, total_bytes] = device_memory_info();
  EXPECT_GT(total_bytes, 0u);
  EXPECT_LE(free_bytes, total_bytes);
  int count = 0;
  STRATA_CUDA_CHECK(cudaGetDeviceCount(&count));
  // One rank alone on its node gets device 0 whatever CUDA_VISIBLE_DEVICES says.
  EXPECT_EQ(select_device(0, 1), 0);
  int current = -1;
  STRATA_CUDA_CHECK(cudaGetDevice(&current));
  EXPECT_EQ(current, 0);
  if (std::getenv("CUDA_VISIBLE_DEVICES"))
    EXPECT_EQ(select_device(0, count + 1), 0);  // sharing declared by the binding: allowed
  else
    EXPECT_THROW(select_device(0, count + 1), Error);  // more local ranks than devices
}

}  // namespace
