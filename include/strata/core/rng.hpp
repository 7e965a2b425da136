// Counter-based RNG (Philox-4x32-10, Salmon et al. 2011, "Parallel random numbers: as
// easy as 1, 2, 3"). A draw is a pure function of (key, counter): no state, no order.
// Parameter initialisation keys it by (seed, hash of the parameter name) and counts by the
// *global* element index, so every layout (TP/PP/DP) draws exactly the same weights
// (DESIGN.md invariant 2).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace strata::core {

// 64-bit FNV-1a: a stable hash of parameter names (independent of compiler and platform).
constexpr std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// Philox4x32-10: four 32-bit outputs per 128-bit counter.
inline std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr,
                                               std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(M0) * ctr[0];
    const std::uint64_t p1 = std::uint64_t(M1) * ctr[2];
    ctr = {std::uint32_t(p1 >> 32) ^ ctr[1] ^ key[0], std::uint32_t(p1),
           std::uint32_t(p0 >> 32) ^ ctr[3] ^ key[1], std::uint32_t(p0)};
    key[0] += W0;
    key[1] += W1;
  }
  return ctr;
}

// A stream of random numbers identified by a 64-bit key; element i of the stream is a
// pure function of (key, i).
class CounterRng {
 public:
  CounterRng(std::uint64_t seed, std::string_view stream_name)
      : CounterRng(seed ^ (fnv1a64(stream_name) * 0x9E3779B97F4A7C15ull)) {}
  explicit CounterRng(std::uint64_t key) : key_{std::uint32_t(key), std::uint32_t(key >> 32)} {}

  // Four independent 32-bit words for counter `index` (and an optional sub-stream).
  std::array<std::uint32_t, 4> bits(std::uint64_t index, std::uint32_t sub = 0) const {
    return philox4x32({std::uint32_t(index), std::uint32_t(index >> 32), sub, 0x5157u}, key_);
  }
  // Uniform in (0, 1), 24-bit resolution, never exactly 0 (safe for log).
  double uniform(std::uint64_t index, std::uint32_t sub = 0) const { return to_unit(bits(index, sub)[0]); }
  // Standard normal for element `index` (Box-Muller on two words of one counter).
  double normal(std::uint64_t index, std::uint32_t sub = 0) const {
    const auto w = bits(index, sub);
    const double u1 = to_unit(w[0]), u2 = to_unit(w[1]);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n, std::uint64_t index, std::uint32_t sub = 0) const {
    const auto w = bits(index, sub);
    const std::uint64_t r = (std::uint64_t(w[0]) << 32) | w[1];
    return n == 0 ? 0 : r % n;
  }

 private:
  static double to_unit(std::uint32_t w) { return (double(w >> 8) + 0.5) / 16777216.0; }
  std::array<std::uint32_t, 2> key_;
};

}  // namespace strata::core
