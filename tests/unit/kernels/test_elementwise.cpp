#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/elementwise.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// n is not a multiple of the internal block size, so the ragged last block is covered.
constexpr index_t kN = 3 * 8192 + 17;

TEST(Elementwise, FillCopyAddAccumulateScaleMatchPlainLoops) {
  const auto a = cast<float>(randn(kN, 1)), b = cast<float>(randn(kN, 2));
  std::vector<float> y(kN), z(kN);
  fill(y.data(), 2.5f, kN);
  for (float v : y) ASSERT_EQ(v, 2.5f);
  copy(y.data(), a.data(), kN);
  EXPECT_EQ(y, a);
  add(z.data(), a.data(), b.data(), kN);
  for (index_t i = 0; i < kN; ++i) ASSERT_EQ(z[i], a[i] + b[i]);
  accumulate(z.data(), a.data(), kN);
  for (index_t i = 0; i < kN; ++i) ASSERT_EQ(z[i], (a[i] + b[i]) + a[i]);
  scale(z.data(), -0.5f, kN);
  for (index_t i = 0; i < kN; ++i) ASSERT_EQ(z[i], ((a[i] + b[i]) + a[i]) * -0.5f);
}

TEST(Elementwise, SumSquaresOfFloatsIsAccumulatedInDouble) {
  // 1M values ~1: a float accumulator would lose ~1e-4 relative; the double one is exact
  // to ~1e-13 relative against a double loop over the same float values.
  const index_t n = 1 << 20;
  const auto x = cast<float>(randn(n, 3));
  double ref = 0;
  for (float v : x) ref += double(v) * double(v);
  EXPECT_NEAR(sum_squares(x.data(), n), ref, 1e-12 * ref);
  const auto xd = randn(kN, 4);
  EXPECT_NEAR(sum_squares(xd.data(), kN), dot(xd, xd), 1e-12 * dot(xd, xd));
  EXPECT_EQ(sum_squares(x.data(), 0), 0.0);
}
