#include <gtest/gtest.h>

#include "../../../src/kernels/cpu/detail.hpp"
#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/elementwise.hpp"

#include <string>

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

static double gelu_ref(double x) {
  return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
static double swiglu_ref(double g, double u) { return g / (1 + std::exp(-g)) * u; }

TEST(FastMath, FloatExpIsWithinThreeUlpOfExpOverItsRange) {
  // The vectorised polynomial exp behind softmax, cross-entropy, GELU and SwiGLU. Cephes'
  // expf polynomial is accurate to ~1 ulp; allow 3 ulp (3 * 2^-23 relative ~ 3.6e-7).
  double worst = 0;
  for (double x = -87.0; x <= 88.3; x += 0.000731) {
    const float xf = static_cast<float>(x);
    const double ref = std::exp(double(xf));
    worst = std::max(worst, std::abs(double(detail::exp_approx(xf)) - ref) / ref);
  }
  EXPECT_LT(worst, 3.6e-7);
  // Saturation instead of inf/NaN far outside the range.
  EXPECT_GT(detail::exp_approx(-200.f), 0.f);
  EXPECT_LT(detail::exp_approx(-200.f), 1e-37f);
  EXPECT_TRUE(std::isfinite(detail::exp_approx(200.f)));
  EXPECT_EQ(detail::tanh_fast(50.f), 1.f);
  EXPECT_EQ(detail::tanh_fast(-50.f), -1.f);
}

// The element-wise loops run their x86-64-v4 clones exactly where the build made them and the
// CPU has x86-64-v4 (detail.hpp, "ISA clones"); the kernel tests in this program then test
// those copies here and the default copies on the emulated AVX2 CPU (emulated.avx2_cpu).
TEST(IsaClones, TheX86_64V4CopiesRunWhereTheCpuHasThem) {
  const std::string loops = loop_isa();
#if STRATA_HAVE_ISA_CLONES
  if (__builtin_cpu_supports("x86-64-v4"))
    EXPECT_EQ(loops.rfind("x86-64-v4", 0), 0u) << loops;
  else
    EXPECT_EQ(loops.rfind("the build target's", 0), 0u) << loops;
#else
  EXPECT_EQ(loops.rfind("the build target's", 0), 0u) << loops;
#endif
}

TEST(Gelu, ForwardMatchesTanhFormulaInDoubleAndFloat) {
  const index_t n = 20000 + 5;
  auto x = randn(n, 1, 3.0);
  x[0] = 0;
  x[1] = 30;
  x[2] = -30;
  std::vector<double> y(n);
  gelu_forward(y.data(), x.data(), n);
  double derr = 0, ferr = 0;
  auto xf = cast<float>(x);
  std::vector<float> yf(n);
  gelu_forward(yf.data(), xf.data(), n);
  for (index_t i = 0; i < n; ++i) {
    derr = std::max(derr, std::abs(y[i] - gelu_ref(x[i])));
    // float: tanh via the fast exp has absolute error ~1e-7, times 0.5|x| <= 15, plus float
    // rounding of y (|y| <= 30): 4e-6 absolute bound.
    ferr = std::max(ferr, std::abs(double(yf[i]) - gelu_ref(double(xf[i]))));
  }
  EXPECT_LT(derr, 1e-14);
  EXPECT_LT(ferr, 4e-6);
}

TEST(Gelu, BackwardMatchesFiniteDifferencesAndAccumulatesOrAssigns) {
  const index_t n = 300;
  auto x = randn(n, 2, 2.0);
  const auto r = randn(n, 3), g0 = randn(n, 4);
  auto g = g0;
  for (int rep = 0; rep < 2; ++rep) gelu_backward(g.data(), r.data(), x.data(), n);
  expect_matches_fd("dx", x, once(g, g0), [&] {
    std::vector<double> y(n);
    gelu_forward(y.data(), x.data(), n);
    return dot(r, y);
  });
  // The float backward agrees with the double one to float precision.
  auto xf = cast<float>(x), rf = cast<float>(r);
  std::vector<float> gf(n, 0.f);
  gelu_backward(gf.data(), rf.data(), xf.data(), n);
  EXPECT_LT(max_abs_diff(gf, once(g, g0)), 1e-5);
  // accumulate = false assigns: what was in dx (NaN here) is not read.
  std::vector<double> ga(n, std::nan(""));
  gelu_backward(ga.data(), r.data(), x.data(), n, /*accumulate=*/false);
  EXPECT_LT(max_abs_diff(ga, once(g, g0)), 1e-12);
  std::vector<float> gfa(n, std::nanf(""));
  gelu_backward(gfa.data(), rf.data(), xf.data(), n, /*accumulate=*/false);
  EXPECT_EQ(gfa, gf);
}

TEST(SwiGlu, ForwardMatchesLoopsInDoubleAndFloat) {
  const index_t n = 20000 + 3;
  const auto g = randn(n, 5, 3.0), u = randn(n, 6);
  std::vector<double> y(n);
  swiglu_forward(y.data(), g.data(), u.data(), n);
  auto gf = cast<float>(g), uf = cast<float>(u);
  std::vector<float> yf(n);
  swiglu_forward(yf.data(), gf.data(), uf.data(), n);
  double derr = 0, ferr = 0;
  for (index_t i = 0; i < n; ++i) {
    derr = std::max(derr, std::abs(y[i] - swiglu_ref(g[i], u[i])));
    ferr = std::max(
        ferr, std::abs(double(yf[i]) - swiglu_ref(gf[i], uf[i])) / (1 + std::abs(swiglu_ref(gf[i], uf[i]))));
  }
  EXPECT_LT(derr, 1e-14);
  EXPECT_LT(ferr, 1e-6);  // a few float ulp of O(1..10) values
}

TEST(SwiGlu, BackwardMatchesFiniteDifferencesAndAccumulatesOrAssigns) {
  const index_t n = 200;
  auto g = randn(n, 7, 2.0), u = randn(n, 8);
  const auto r = randn(n, 9), dg0 = randn(n, 10), du0 = randn(n, 11);
  auto dg = dg0, du = du0;
  for (int rep = 0; rep < 2; ++rep) swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  auto loss = [&] {
    std::vector<double> y(n);
    swiglu_forward(y.data(), g.data(), u.data(), n);
    return dot(r, y);
  };
  expect_matches_fd("dgate", g, once(dg, dg0), loss);
  expect_matches_fd("dup", u, once(du, du0), loss);
  // accumulate = false assigns: what was in dgate and dup (NaN here) is not read.
  std::vector<double> dga(n, std::nan("")), dua(n, std::nan(""));
  swiglu_backward(dga.data(), dua.data(), r.data(), g.data(), u.data(), n, /*accumulate=*/false);
  EXPECT_LT(max_abs_diff(dga, once(dg, dg0)), 1e-12);
  EXPECT_LT(max_abs_diff(dua, once(du, du0)), 1e-12);
}
