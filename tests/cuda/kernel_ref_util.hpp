// Helpers of the CUDA kernel tests that compare against the CPU reference kernels: seeded
// bf16-rounded random data (the GPU and the reference see exactly the same inputs) and
// float <-> double conversions for running the reference in double.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda_test_util.hpp"

namespace strata::test {

// A bf16 output carries one rounding of at most half an ulp, 2^-9 of its value; 2^-8 allows
// that plus the fp32 arithmetic before it.
inline constexpr double kBf16Rtol = 1.0 / 256;

// n normal(0, scale) values rounded to bf16 (so uploading them as bf16 is exact).
inline std::vector<float> randn_bf16(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = bf16_round(static_cast<float>(d(gen)));
  return v;
}

// n normal values in fp32 (not rounded): fp32 inputs such as fp32 gradients.
inline std::vector<float> randn_f32(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(gen));
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }
inline std::vector<float> to_float(const std::vector<double>& x) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(x[i]);
  return y;
}

inline double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace strata::test
