#include <gtest/gtest.h>

#include <limits>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// V = 37 with ld = 40: three padding columns per row, filled with NaN / huge values that
// must never be read as logits. Row 2 has target -1 (no loss).
constexpr index_t kN = 5, kV = 37, kLd = 40;
const std::vector<std::int32_t> kTargets = {3, 36, -1, 0, 17};

static std::vector<double> padded_logits(std::uint64_t seed, double scale = 3.0) {
  auto x = randn(kN * kLd, seed, scale);
  for (index_t n = 0; n < kN; ++n) {
    x[n * kLd + kV] = std::numeric_limits<double>::quiet_NaN();
    x[n * kLd + kV + 1] = 1e30;
    x[n * kLd + kV + 2] = -1e30;
  }
  return x;
}

static double ce_ref(const double* row, std::int32_t target, index_t V) {
  if (target < 0) return 0.0;
  double mx = row[0];
  for (index_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double s = 0;
  for (index_t v = 0; v < V; ++v) s += std::exp(row[v] - mx);
  return std::log(s) + mx - row[target];
}

TEST(CrossEntropy, ForwardMatchesLogSumExpIgnoringPaddingAndNegativeTargets) {
  const auto x = padded_logits(1);
  std::vector<double> loss(kN, -1.0);
  cross_entropy_forward(loss.data(), x.data(), kTargets.data(), kN, kV, kLd);
  for (index_t n = 0; n < kN; ++n)
    EXPECT_NEAR(loss[n], ce_ref(&x[n * kLd], kTargets[n], kV), 1e-13) << "row " << n;
  EXPECT_EQ(loss[2], 0.0);
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferencesAccumulatesAndLeavesPaddingAlone) {
  auto x = padded_logits(2);
  for (index_t n = 0; n < kN; ++n)  // FD perturbs padding too: keep it finite here
    for (index_t v = kV; v < kLd; ++v) x[n * kLd + v] = 5.0;
  const auto dl = randn(kN, 3);
  const auto g0 = randn(x.size(), 4);
  auto g = g0;
  for (int rep = 0; rep < 2; ++rep)
    cross_entropy_backward(g.data(), x.data(), kTargets.data(), dl.data(), kN, kV, kLd);
  const auto grad = once(g, g0);
  // L = sum_n dl[n] loss[n]; padding columns and the target -1 row get zero gradient.
  expect_matches_fd("dlogits", x, grad, [&] {
    std::vector<double> loss(kN);
    cross_entropy_forward(loss.data(), x.data(), kTargets.data(), kN, kV, kLd);
    return dot(dl, loss);
  });
  for (index_t n = 0; n < kN; ++n)
    for (index_t v = 0; v < kLd; ++v)
      if (n == 2 || v >= kV) {
        ASSERT_EQ(g[n * kLd + v], g0[n * kLd + v]) << n << "," << v;
      }
}

TEST(CrossEntropy, FusedEqualsForwardPlusBackwardAndZeroesPaddingAndIgnoredRows) {
  const auto x = padded_logits(5);
  const double dloss = 1.0 / 4;  // mean over the 4 rows with a target
  std::vector<double> loss_ref(kN), grad_ref(kN * kLd, 0.0), dls(kN, dloss);
  cross_entropy_forward(loss_ref.data(), x.data(), kTargets.data(), kN, kV, kLd);
  cross_entropy_backward(grad_ref.data(), x.data(), kTargets.data(), dls.data(), kN, kV, kLd);
  auto fused = x;
  std::vector<double> loss(kN, -1);
  cross_entropy_fused(fused.data(), loss.data(), kTargets.data(), dloss, kN, kV, kLd);
  EXPECT_LT(max_abs_diff(loss, loss_ref), 1e-14);
  for (index_t n = 0; n < kN; ++n)
    for (index_t v = 0; v < kLd; ++v) {
      const double want = v < kV ? grad_ref[n * kLd + v] : 0.0;
      ASSERT_NEAR(fused[n * kLd + v], want, 1e-15) << n << "," << v;
    }
  for (index_t v = 0; v < kLd; ++v) ASSERT_EQ(fused[2 * kLd + v], 0.0);
  EXPECT_EQ(loss[2], 0.0);
}

TEST(CrossEntropy, FloatAgreesWithDoubleAtGpt2VocabularyWithLargeLogits) {
  // V = 50257 (ld 50304 as a padded LM head would give), logits of scale 10 plus one row
  // with a 1000 offset: the max subtraction must keep exp in range. Loss tolerance: the
  // exp polynomial (~1 ulp), float rounding of x - max (|x - max| <= ~100, ulp 8e-6) and a
  // double-accumulated sum; 1e-4 absolute on losses of ~12.
  const index_t N = 3, V = 50257, ld = 50304;
  auto x = randn(N * ld, 6, 10.0);
  for (index_t v = 0; v < V; ++v) x[2 * ld + v] += 1000.0;
  const std::vector<std::int32_t> t = {0, 50256, 25000};
  auto xf = cast<float>(x);
  std::vector<double> ld_(N);
  std::vector<float> lf(N);
  std::vector<double> xd(xf.begin(), xf.end());  // the same float-rounded inputs in double
  auto gd = xd;
  cross_entropy_fused(gd.data(), ld_.data(), t.data(), 1.0, N, V, ld);
  cross_entropy_fused(xf.data(), lf.data(), t.data(), 1.0f, N, V, ld);
  for (index_t n = 0; n < N; ++n) EXPECT_NEAR(lf[n], ld_[n], 1e-4) << n;
  // gradients are probabilities (<= 1): 1e-6 absolute.
  EXPECT_LT(max_abs_diff(xf, gd), 1e-6);
}

TEST(CrossEntropy, RejectsTargetsOutsideTheVocabulary) {
  std::vector<float> x(kLd, 0.f), loss(1);
  const std::int32_t bad = kV;
  EXPECT_THROW(cross_entropy_forward(loss.data(), x.data(), &bad, 1, kV, kLd), std::runtime_error);
}
