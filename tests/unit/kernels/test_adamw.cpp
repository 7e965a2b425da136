#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/adamw.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

TEST(AdamW, TwoStepsMatchHandComputedValuesWithBiasCorrectionDecayAndGradScale) {
  // One element worked by hand (lr 0.1, b1 0.9, b2 0.99, eps 1e-8, wd 0.1, grad_scale 0.5):
  // step 1, p = 1, grad = 2 -> g = 1:
  //   m = 0.1, v = 0.01, mh = 0.1 / 0.1 = 1, vh = 0.01 / 0.01 = 1
  //   p = 1 - 0.1 (1 / (1 + 1e-8) + 0.1 * 1) = 0.89000000099999999
  // step 2, grad = -4 -> g = -2:
  //   m = 0.09 - 0.2 = -0.11, v = 0.0099 + 0.04 = 0.0499
  //   mh = -0.11 / 0.19, vh = 0.0499 / 0.0199
  //   p = p1 - 0.1 (mh / (sqrt(vh) + 1e-8) + 0.1 p1)
  AdamWParams hp{0.1, 0.9, 0.99, 1e-8, 0.1, 0.5, 1};
  std::vector<double> p = {1.0, -3.0}, m = {0, 0}, v = {0, 0};
  std::vector<double> g = {2.0, 0.0};
  adamw_update(p.data(), g.data(), m.data(), v.data(), 2, hp);
  const double p1 = 1 - 0.1 * (1 / (1 + 1e-8) + 0.1);
  EXPECT_NEAR(p[0], p1, 1e-15);
  EXPECT_NEAR(m[0], 0.1, 1e-15);
  EXPECT_NEAR(v[0], 0.01, 1e-15);
  // Zero gradient: only the decoupled weight decay acts, p -= lr wd p.
  EXPECT_NEAR(p[1], -3.0 * (1 - 0.01), 1e-15);
  g = {-4.0, 0.0};
  hp.step = 2;
  adamw_update(p.data(), g.data(), m.data(), v.data(), 2, hp);
  const double mh = -0.11 / (1 - 0.81), vh = 0.0499 / (1 - 0.9801);
  const double p2 = p1 - 0.1 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * p1);
  EXPECT_NEAR(m[0], -0.11, 1e-15);
  EXPECT_NEAR(v[0], 0.0499, 1e-15);
  EXPECT_NEAR(p[0], p2, 1e-14);
  EXPECT_NEAR(p[1], -3.0 * 0.99 * 0.99, 1e-14);

  // float agrees with double to float precision over many elements (n spans blocks).
  const index_t n = 20000 + 11;
  const auto p0 = randn(n, 1), gr = randn(n, 2);
  std::vector<double> pd = p0, md(n, 0), vd(n, 0);
  auto pf = cast<float>(p0), gf = cast<float>(gr);
  std::vector<float> mf(n, 0), vf(n, 0);
  hp.step = 1;
  adamw_update(pd.data(), gr.data(), md.data(), vd.data(), n, hp);
  adamw_update(pf.data(), gf.data(), mf.data(), vf.data(), n, hp);
  EXPECT_LT(max_abs_diff(pf, pd), 1e-6);
}

TEST(AdamW, RejectsStepZero) {
  AdamWParams hp{0.1, 0.9, 0.99, 1e-8, 0.0, 1.0, 0};
  float p = 1, g = 1, m = 0, v = 0;
  EXPECT_THROW(adamw_update(&p, &g, &m, &v, 1, hp), std::runtime_error);
}

// The fused form is the plain update followed by clearing the gradient, bitwise.
TEST(AdamW, ZeroGradFormEqualsTheUpdateThenAFillOfTheGradient) {
  const index_t n = 20011;
  const auto p0 = cast<float>(randn(n, 41)), g0 = cast<float>(randn(n, 42)),
             m0 = cast<float>(randn(n, 43, 0.1));
  auto v0 = cast<float>(randn(n, 44, 0.1));
  for (auto& x : v0) x = x * x;
  const AdamWParams hp{3e-4, 0.9, 0.95, 1e-8, 0.1, 0.8, 7};
  auto p1 = p0, m1 = m0, v1 = v0;
  adamw_update(p1.data(), g0.data(), m1.data(), v1.data(), n, hp);
  auto p2 = p0, g2 = g0, m2 = m0, v2 = v0;
  adamw_update_zero_grad(p2.data(), g2.data(), m2.data(), v2.data(), n, hp);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(v1, v2);
  EXPECT_EQ(g2, std::vector<float>(n, 0.0f));
}
