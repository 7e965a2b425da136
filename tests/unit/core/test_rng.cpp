#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>

#include "strata/core/memory_plan.hpp"
#include "strata/core/rng.hpp"

using namespace strata;

TEST(CounterRng, SameKeyAndIndexGiveSameDrawRegardlessOfOrder) {
  core::CounterRng a(42, "layers.0.attn.wq"), b(42, "layers.0.attn.wq");
  const double late = a.normal(1000);
  for (int i = 0; i < 10; ++i) a.normal(i);
  EXPECT_EQ(late, b.normal(1000));
  EXPECT_NE(a.normal(0), core::CounterRng(42, "layers.0.attn.wk").normal(0));
  EXPECT_NE(a.normal(0), core::CounterRng(43, "layers.0.attn.wq").normal(0));
}

TEST(CounterRng, NormalDrawsHaveZeroMeanUnitVariance) {
  core::CounterRng rng(7, "stats");
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal(i);
    s += x;
    s2 += x * x;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  // Standard error of the mean is 1/sqrt(n) ~ 0.0022; allow 4 sigma.
  EXPECT_NEAR(mean, 0.0, 0.009);
  EXPECT_NEAR(var, 1.0, 0.02);
}

TEST(CounterRng, Philox4x32MatchesPublishedKnownAnswer) {
  // Random123's known-answer test for philox4x32_10: counter and key all 0xFFFFFFFF.
  const auto r =
      core::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(r[0], 0x408f276du);
  EXPECT_EQ(r[1], 0x41c83b0eu);
  EXPECT_EQ(r[2], 0xa20bc7c6u);
  EXPECT_EQ(r[3], 0x6d5451fdu);
}

TEST(MemoryPlan, CarvesAlignedNonOverlappingViews) {
  MemoryPlan plan("test");
  const auto a = plan.add("a", {3, 5}, DType::f32, "step");
  const auto b = plan.add("b", {7}, DType::f64, "persistent");
  plan.allocate();
  auto* pa = plan.data<float>(a);
  auto* pb = plan.data<double>(b);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(pa) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(pb) % 64, 0u);
  EXPECT_GE(reinterpret_cast<char*>(pb) - reinterpret_cast<char*>(pa), 15 * 4);
  EXPECT_EQ(plan.total_bytes(), 64u + 64u);
  EXPECT_THROW(plan.tensor("missing"), Error);
  EXPECT_EQ(plan.tensor(a).device(), Device::cpu);
}

// An external allocator (the GPU runtime's cudaMalloc) provides the arena and the device of
// the views; the plan only carves it. Here the "device" arena is host memory tagged cuda.
TEST(MemoryPlan, AllocateWithUsesTheGivenArenaAndDevice) {
  bool freed = false;  // declared before the plan: the deleter runs when the plan goes
  MemoryPlan plan("external");
  const auto a = plan.add("a", {4}, DType::f32, "step");
  const auto b = plan.add("b", {2}, DType::f32, "step");
  {
    void* raw = std::aligned_alloc(64, 128);
    plan.allocate_with(std::shared_ptr<void>(raw, [&freed](void* p) { std::free(p), freed = true; }),
                       Device::cuda);
    EXPECT_EQ(plan.tensor(a).data<float>(), static_cast<float*>(raw));
    EXPECT_EQ(static_cast<void*>(plan.tensor(b).data<float>()), static_cast<char*>(raw) + 64);
  }
  EXPECT_EQ(plan.tensor(b).device(), Device::cuda);
  EXPECT_EQ(plan.device(), Device::cuda);
  EXPECT_THROW(plan.allocate(), Error);  // allocated twice
  EXPECT_FALSE(freed);                   // the plan keeps the arena alive
  MemoryPlan unaligned("unaligned");
  unaligned.add("x", {1}, DType::f32, "step");
  auto* raw = static_cast<char*>(std::aligned_alloc(64, 128));
  EXPECT_THROW(
      unaligned.allocate_with(std::shared_ptr<void>(raw + 4, [raw](void*) { std::free(raw); }), Device::cuda),
      Error);
}
