#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/rope.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// HS = 136: 68 pairs, more than the kernel's 64-pair cos/sin chunk, so chunking is covered.
constexpr index_t kB = 2, kT = 5, kH = 3, kHS = 136;
constexpr double kTheta = 10000.0;

static std::vector<double> rope_ref(const std::vector<double>& x, index_t pos_offset) {
  std::vector<double> y(x.size());
  const index_t half = kHS / 2;
  for (index_t b = 0; b < kB; ++b)
    for (index_t t = 0; t < kT; ++t)
      for (index_t h = 0; h < kH; ++h)
        for (index_t i = 0; i < half; ++i) {
          const index_t base = ((b * kT + t) * kH + h) * kHS;
          const double ang = double(t + pos_offset) * std::pow(kTheta, -2.0 * double(i) / kHS);
          const double a = x[base + i], c = x[base + i + half];
          y[base + i] = a * std::cos(ang) - c * std::sin(ang);
          y[base + i + half] = a * std::sin(ang) + c * std::cos(ang);
        }
  return y;
}

TEST(Rope, ForwardMatchesLoopsWithAndWithoutPositionOffset) {
  for (index_t off : {0, 7}) {
    const auto x = randn(kB * kT * kH * kHS, 1);
    auto y = x;
    rope_forward(y.data(), kB, kT, kH, kHS, kTheta, off);
    EXPECT_LT(max_abs_diff(y, rope_ref(x, off)), 1e-12) << "offset " << off;
    auto yf = cast<float>(x);
    rope_forward(yf.data(), kB, kT, kH, kHS, kTheta, off);
    EXPECT_LT(max_abs_diff(yf, rope_ref(x, off)), 1e-5) << "float, offset " << off;
  }
}

TEST(Rope, BackwardInvertsForward) {
  const auto x = randn(kB * kT * kH * kHS, 2);
  auto y = x;
  rope_forward(y.data(), kB, kT, kH, kHS, kTheta, 3);
  rope_backward(y.data(), kB, kT, kH, kHS, kTheta, 3);
  EXPECT_LT(max_abs_diff(y, x), 1e-12);
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  // rope transforms its gradient in place (it is not accumulated, see rope.hpp): dx = R^T r.
  auto x = randn(kB * kT * kH * kHS, 3);
  const auto r = randn(x.size(), 4);
  auto g = r;
  rope_backward(g.data(), kB, kT, kH, kHS, kTheta, 2);
  expect_matches_fd("dx", x, g, [&] {
    auto y = x;
    rope_forward(y.data(), kB, kT, kH, kHS, kTheta, 2);
    return dot(r, y);
  });
}
