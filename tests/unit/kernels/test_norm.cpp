#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/norm.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// C = 70: one full 64-column block plus a ragged one in the dw/db reduction, and more than
// one 16-lane reduction chunk plus a tail in the row statistics.
constexpr index_t kN = 6, kC = 70;
constexpr double kEps = 1e-5;

static std::vector<double> layernorm_ref(const std::vector<double>& x, const std::vector<double>& w,
                                         const double* b) {
  std::vector<double> y(kN * kC);
  for (index_t n = 0; n < kN; ++n) {
    double mu = 0, var = 0;
    for (index_t c = 0; c < kC; ++c) mu += x[n * kC + c];
    mu /= kC;
    for (index_t c = 0; c < kC; ++c) var += (x[n * kC + c] - mu) * (x[n * kC + c] - mu);
    var /= kC;
    for (index_t c = 0; c < kC; ++c)
      y[n * kC + c] = (x[n * kC + c] - mu) / std::sqrt(var + kEps) * w[c] + (b ? b[c] : 0.0);
  }
  return y;
}

static std::vector<double> rmsnorm_ref(const std::vector<double>& x, const std::vector<double>& w) {
  std::vector<double> y(kN * kC);
  for (index_t n = 0; n < kN; ++n) {
    double ms = 0;
    for (index_t c = 0; c < kC; ++c) ms += x[n * kC + c] * x[n * kC + c];
    ms /= kC;
    for (index_t c = 0; c < kC; ++c) y[n * kC + c] = x[n * kC + c] / std::sqrt(ms + kEps) * w[c];
  }
  return y;
}

TEST(LayerNorm, ForwardMatchesLoopsInDoubleAndFloat) {
  // Offset mean 3: the two-pass variance must not cancel.
  auto x = randn(kN * kC, 1);
  for (auto& v : x) v += 3.0;
  const auto w = randn(kC, 2), b = randn(kC, 3);
  std::vector<double> y(kN * kC), mean(kN), rstd(kN);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), kN, kC, kEps);
  EXPECT_LT(max_abs_diff(y, layernorm_ref(x, w, b.data())), 1e-12);
  layernorm_forward<double>(y.data(), mean.data(), rstd.data(), x.data(), w.data(), nullptr, kN, kC, kEps);
  EXPECT_LT(max_abs_diff(y, layernorm_ref(x, w, nullptr)), 1e-12);
  // float: normalised values O(1) times w O(1); ~1e-6 relative rounding -> 2e-5 absolute.
  auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b);
  std::vector<float> yf(kN * kC), mf(kN), rf(kN);
  layernorm_forward(yf.data(), mf.data(), rf.data(), xf.data(), wf.data(), bf.data(), kN, kC, float(kEps));
  EXPECT_LT(max_abs_diff(yf, layernorm_ref(x, w, b.data())), 2e-5);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferencesAndAccumulates) {
  auto x = randn(kN * kC, 4), w = randn(kC, 5), b = randn(kC, 6);
  const auto r = randn(kN * kC, 7);
  std::vector<double> y(kN * kC), mean(kN), rstd(kN);
  auto loss = [&] {
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), kN, kC, kEps);
    return dot(r, y);
  };
  loss();
  const auto dx0 = randn(x.size(), 8), dw0 = randn(kC, 9), db0 = randn(kC, 10);
  auto dx = dx0, dw = dw0, db = db0;
  for (int rep = 0; rep < 2; ++rep)
    layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), kN, kC);
  expect_matches_fd("dx", x, once(dx, dx0), loss);
  expect_matches_fd("dw", w, once(dw, dw0), loss);
  expect_matches_fd("db", b, once(db, db0), loss);
}

TEST(RmsNorm, ForwardMatchesLoopsInDoubleAndFloat) {
  const auto x = randn(kN * kC, 11), w = randn(kC, 12);
  std::vector<double> y(kN * kC), rstd(kN);
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kN, kC, kEps);
  EXPECT_LT(max_abs_diff(y, rmsnorm_ref(x, w)), 1e-12);
  auto xf = cast<float>(x), wf = cast<float>(w);
  std::vector<float> yf(kN * kC), rf(kN);
  rmsnorm_forward(yf.data(), rf.data(), xf.data(), wf.data(), kN, kC, float(kEps));
  EXPECT_LT(max_abs_diff(yf, rmsnorm_ref(x, w)), 2e-5);
}

TEST(RmsNorm, BackwardMatchesFiniteDifferencesAndAccumulates) {
  auto x = randn(kN * kC, 13), w = randn(kC, 14);
  const auto r = randn(kN * kC, 15);
  std::vector<double> y(kN * kC), rstd(kN);
  auto loss = [&] {
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kN, kC, kEps);
    return dot(r, y);
  };
  loss();
  const auto dx0 = randn(x.size(), 16), dw0 = randn(kC, 17);
  auto dx = dx0, dw = dw0;
  for (int rep = 0; rep < 2; ++rep)
    rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), kN, kC);
  expect_matches_fd("dx", x, once(dx, dx0), loss);
  expect_matches_fd("dw", w, once(dw, dw0), loss);
}

// The residual add fused with the next norm equals add_bias, accumulate and the norm done
// one after the other, bitwise (same operations, same order), with and without a bias.
TEST(Norm, ResidualFusedForwardsAreBitwiseEqualToAddBiasAccumulateThenNorm) {
  const index_t N = 37, C = 200;
  const auto x = cast<float>(randn(N * C, 31)), delta = cast<float>(randn(N * C, 32));
  const auto bias = cast<float>(randn(C, 33)), w = cast<float>(randn(C, 34)), b = cast<float>(randn(C, 35));
  for (const float* bi : {bias.data(), static_cast<const float*>(nullptr)}) {
    std::vector<float> r0 = delta, y0(N * C), m0(N), s0(N);
    if (bi) add_bias(r0.data(), bi, N, C);
    accumulate(r0.data(), x.data(), N * C);
    std::vector<float> r1 = delta, y1(N * C), m1(N), s1(N);
    layernorm_forward(y0.data(), m0.data(), s0.data(), r0.data(), w.data(), b.data(), N, C, 1e-5f);
    residual_layernorm_forward(r1.data(), y1.data(), m1.data(), s1.data(), x.data(), bi, w.data(), b.data(),
                               N, C, 1e-5f);
    EXPECT_EQ(r0, r1);
    EXPECT_EQ(y0, y1);
    EXPECT_EQ(m0, m1);
    EXPECT_EQ(s0, s1);
    std::vector<float> r2 = delta, y2(N * C), s2(N);
    rmsnorm_forward(y0.data(), s0.data(), r0.data(), w.data(), N, C, 1e-6f);
    residual_rmsnorm_forward(r2.data(), y2.data(), s2.data(), x.data(), bi, w.data(), N, C, 1e-6f);
    EXPECT_EQ(r0, r2);
    EXPECT_EQ(y0, y2);
    EXPECT_EQ(s0, s2);
  }
}
