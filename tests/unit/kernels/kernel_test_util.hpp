// Helpers for the kernel tests: seeded random data, and the finite-difference gradient check.
//
// Finite differences (double): for a scalar loss L(x) the central difference
//   (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
// has truncation error ~ eps^2 |L'''| / 6 ~ 1e-12 and round-off ~ 1e-16 |L| / eps ~ 1e-10 |L|
// for eps = 1e-6. The losses here are random projections L = sum_j r_j y_j of O(10..100)
// terms of size O(1), so both errors are below ~1e-8 in absolute terms; we compare against
// 1e-6 relative to the largest gradient component (at least 1), a margin of ~100x that still
// catches any wrong term of a formula (those give O(1e-2..1) errors).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace strata::kernels::cpu::test {

inline std::vector<double> randn(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks analytic == dL/dx by central differences, perturbing every element of x in place
// (x is restored). `loss` recomputes L from the current x.
inline void expect_matches_fd(const char* what, std::vector<double>& x, const std::vector<double>& analytic,
                              const std::function<double()>& loss, double rtol = 1e-6, double eps = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double scale = 1.0;
  for (double g : analytic) scale = std::max(scale, std::abs(g));
  double worst = 0.0;
  std::size_t worst_i = 0;
  double worst_fd = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    const double fd = (lp - lm) / (2 * eps);
    const double err = std::abs(fd - analytic[i]) / scale;
    if (err > worst) {
      worst = err;
      worst_i = i;
      worst_fd = fd;
    }
  }
  EXPECT_LE(worst, rtol) << what << ": element " << worst_i << " analytic " << analytic[worst_i]
                         << " vs finite difference " << worst_fd;
}

// Backward kernels accumulate: the tests start every gradient at g0 != 0, run the backward
// twice, and recover one gradient as (g - g0) / 2, which equals dL/dx only if both calls
// added (an assigning kernel gives (grad - g0) / 2 instead).
inline std::vector<double> once(const std::vector<double>& g, const std::vector<double>& g0) {
  std::vector<double> r(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) r[i] = (g[i] - g0[i]) / 2;
  return r;
}

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

template <class T>
double max_abs_diff(const std::vector<T>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

inline double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}

}  // namespace strata::kernels::cpu::test
