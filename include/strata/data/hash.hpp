// Stable non-cryptographic hashes for deduplication and content digests: the same bytes give
// the same hash on every platform and in every run (no per-process seeding), which is what
// makes global deduplication across ranks and dataset digests comparable.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace strata::data {

// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

constexpr std::uint64_t rotl64(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

struct Hash128 {
  std::uint64_t lo = 0, hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
  friend auto operator<=>(const Hash128&, const Hash128&) = default;
  std::string hex() const;
};

// Two 64-bit lanes over 8-byte little-endian words, each finalised with mix64.
class Hasher128 {
 public:
  explicit Hasher128(std::uint64_t seed = 0) : a_(seed ^ 0x9E3779B97F4A7C15ull), b_(mix64(seed + 1)) {}
  void update(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    length_ += n;
    if (fill_ == 0)  // aligned with the 8-byte words: absorb them straight from the input
      for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        absorb(w);
      }
    while (n > 0) {
      const std::size_t take = std::min<std::size_t>(8 - fill_, n);
      std::memcpy(reinterpret_cast<unsigned char*>(&word_) + fill_, p, take);
      fill_ += take, p += take, n -= take;
      if (fill_ == 8) {
        absorb(word_);
        word_ = 0, fill_ = 0;
      }
    }
  }
  void update(std::string_view s) { update(s.data(), s.size()); }
  Hash128 finish() {
    if (fill_ > 0) absorb(word_);
    absorb(length_);
    return {mix64(a_ ^ rotl64(b_, 17)), mix64(b_ + 3 * a_)};
  }

 private:
  void absorb(std::uint64_t w) {
    a_ = rotl64((a_ ^ mix64(w)) * 0x9FB21C651E98DF25ull, 29);
    b_ = rotl64((b_ + w) * 0xC2B2AE3D27D4EB4Full, 31) ^ a_;
  }
  std::uint64_t a_, b_, word_ = 0, length_ = 0;
  std::size_t fill_ = 0;
};

inline Hash128 hash128(std::string_view s, std::uint64_t seed = 0) {
  Hasher128 h(seed);
  h.update(s);
  return h.finish();
}

inline std::uint64_t hash64(std::string_view s, std::uint64_t seed = 0) { return hash128(s, seed).lo; }

// A fast 64-bit hash of a short byte string for in-memory tables (token indexes, caches): 8-byte
// words folded with multiply-xorshift, the length in the seed; the last, partial word is read
// as overlapping loads (no byte loop). Stable, but not Hasher128's value; never stored.
inline std::uint64_t table_hash(const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  const auto load32 = [](const unsigned char* q) {
    std::uint32_t v;
    std::memcpy(&v, q, 4);
    return std::uint64_t(v);
  };
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  std::uint64_t w;
  if (n >= 8) {
    const unsigned char* last = p + n - 8;
    for (; p < last; p += 8) {
      std::memcpy(&w, p, 8);
      h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
    }
    std::memcpy(&w, last, 8);  // the last 8 bytes, overlapping the previous word
  } else if (n >= 4) {
    w = load32(p) | load32(p + n - 4) << 32;
  } else if (n > 0) {
    w = std::uint64_t(p[0]) | std::uint64_t(p[n / 2]) << 8 | std::uint64_t(p[n - 1]) << 16;
  } else {
    w = 0;
  }
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}
inline std::uint64_t table_hash(std::string_view s) { return table_hash(s.data(), s.size()); }

}  // namespace strata::data
