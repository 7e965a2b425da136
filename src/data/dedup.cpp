// Exact and near deduplication (dedup.hpp).
#include "strata/data/dedup.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_set>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"

namespace strata::data {

namespace {

struct Hash128Hasher {
  std::size_t operator()(const Hash128& h) const { return std::size_t(h.lo); }
};

bool is_word_char(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// Integral of f over [a, b] by the midpoint rule (smooth integrands; 200 panels suffice).
template <class F>
double integrate(F f, double a, double b) {
  constexpr int n = 200;  // (optimal_lsh_params' kPanels)
  const double h = (b - a) / n;
  double s = 0;
  for (int i = 0; i < n; ++i) s += f(a + (i + 0.5) * h);
  return s * h;
}

}  // namespace

std::vector<std::uint8_t> mark_exact_duplicates(std::span<const Hash128> hashes) {
  std::vector<std::uint8_t> dup(hashes.size());
  std::unordered_set<Hash128, Hash128Hasher> seen;
  seen.reserve(hashes.size() * 2);
  for (std::size_t i = 0; i < hashes.size(); ++i) dup[i] = !seen.insert(hashes[i]).second;
  return dup;
}

void optimal_lsh_params(double threshold, int num_perm, int& bands, int& rows) {
  // ~700 (b, r) pairs x 800 pow() calls: computed once per (threshold, num_perm) and process.
  static std::mutex mu;
  static std::map<std::pair<double, int>, std::pair<int, int>> known;
  {
    const std::lock_guard lock(mu);
    if (const auto it = known.find({threshold, num_perm}); it != known.end()) {
      bands = it->second.first, rows = it->second.second;
      return;
    }
  }
  double best = std::numeric_limits<double>::max();
  bands = 1, rows = num_perm;
  // s^r at the integration points of [0, threshold] and [threshold, 1] for every r, computed
  // once (the same values the integrand would compute for each b): half the pow() calls.
  constexpr int kPanels = 200;  // integrate()'s
  std::vector<double> below(std::size_t(num_perm + 1) * kPanels), above(below.size());
  for (int r = 1; r <= num_perm; ++r)
    for (int k = 0; k < kPanels; ++k) {
      below[std::size_t(r) * kPanels + std::size_t(k)] =
          std::pow(0.0 + (k + 0.5) * ((threshold - 0.0) / kPanels), r);
      above[std::size_t(r) * kPanels + std::size_t(k)] =
          std::pow(threshold + (k + 0.5) * ((1.0 - threshold) / kPanels), r);
    }
  for (int b = 1; b <= num_perm; ++b) {
    for (int r = 1; b * r <= num_perm; ++r) {
      const double* sr_below = below.data() + std::size_t(r) * kPanels;
      const double* sr_above = above.data() + std::size_t(r) * kPanels;
      int k = 0;  // integrate() visits its points in order: k-th call, k-th point
      auto p_below = [&](double) { return 1 - std::pow(1 - sr_below[k++], b); };
      const double fp = integrate(p_below, 0.0, threshold);
      k = 0;
      auto q_above = [&](double) { return 1 - (1 - std::pow(1 - sr_above[k++], b)); };
      const double fn = integrate(q_above, threshold, 1.0);
      if (fp + fn < best) best = fp + fn, bands = b, rows = r;
    }
  }
  const std::lock_guard lock(mu);
  known[{threshold, num_perm}] = {bands, rows};
}

MinHasher::MinHasher(const MinHashConfig& config) : config_(config) {
  STRATA_CHECK(config.num_perm >= 2, "MinHash needs at least 2 permutations, got ", config.num_perm);
  STRATA_CHECK(config.shingle >= 1, "the shingle size must be at least 1, got ", config.shingle);
  STRATA_CHECK(config.threshold > 0 && config.threshold <= 1,
               "the near-duplicate threshold must be in (0, 1], got ", config.threshold);
  optimal_lsh_params(config.threshold, config.num_perm, bands_, rows_);
  const core::CounterRng rng(config.seed, "data.minhash");
  mul_.resize(std::size_t(config.num_perm));
  add_.resize(std::size_t(config.num_perm));
  for (int p = 0; p < config.num_perm; ++p) {
    const auto w = rng.bits(std::uint64_t(p));
    mul_[std::size_t(p)] = (std::uint64_t(w[0]) << 32 | w[1]) | 1;  // odd multiplier
    add_[std::size_t(p)] = std::uint64_t(w[2]) << 32 | w[3];
  }
}

void MinHasher::signature(std::string_view text, std::uint32_t* out) const {
  const int P = config_.num_perm;
  std::fill(out, out + P, std::numeric_limits<std::uint32_t>::max());
  // Word hashes of the lower-cased words (letters, digits and any non-ASCII byte). Per-thread
  // buffers: no allocation per document once grown.
  thread_local std::vector<std::uint64_t> words;
  thread_local std::string word;
  words.clear();
  word.clear();
  for (std::size_t i = 0; i <= text.size(); ++i) {
    const unsigned char c = i < text.size() ? static_cast<unsigned char>(text[i]) : ' ';
    if (is_word_char(c)) {
      word.push_back(c < 0x80 ? char(c | ((c >= 'A' && c <= 'Z') ? 0x20 : 0)) : char(c));
    } else if (!word.empty()) {
      words.push_back(hash64(word));
      word.clear();
    }
  }
  if (words.empty()) return;
  const std::size_t k = std::min<std::size_t>(std::size_t(config_.shingle), words.size());
  // A shingle's hash, then P universal-hash images h_p(x) = high 32 bits of (a_p x + c_p)
  // mod 2^64 (multiply-shift, Dietzfelbinger et al. 1997).
  for (std::size_t i = 0; i + k <= words.size(); ++i) {
    std::uint64_t x = words[i];
    for (std::size_t j = 1; j < k; ++j) x = mix64(x * 0x9E3779B97F4A7C15ull + words[i + j]);
    for (int p = 0; p < P; ++p) {
      const auto v = std::uint32_t((mul_[std::size_t(p)] * x + add_[std::size_t(p)]) >> 32);
      out[p] = std::min(out[p], v);
    }
  }
}

std::vector<std::uint32_t> MinHasher::signature(std::string_view text) const {
  std::vector<std::uint32_t> s(std::size_t(config_.num_perm));
  signature(text, s.data());
  return s;
}

double estimate_jaccard(const std::uint32_t* a, const std::uint32_t* b, int num_perm) {
  int eq = 0;
  for (int p = 0; p < num_perm; ++p) eq += a[p] == b[p];
  return double(eq) / num_perm;
}

std::vector<std::uint8_t> mark_near_duplicates(std::span<const std::uint32_t> signatures,
                                               const MinHasher& hasher) {
  const int P = hasher.config().num_perm, B = hasher.bands(), R = hasher.rows();
  STRATA_CHECK(signatures.size() % std::size_t(P) == 0, "signatures are not a whole number of ", P,
               "-value rows");
  const std::size_t n = signatures.size() / std::size_t(P);
  std::vector<std::uint8_t> dup(n);
  // Band key -> the kept documents with that band: a flat multimap (open-addressing heads, each
  // entry linking to the previous entry of its key), no allocation per bucket. A document is a
  // near-duplicate when any candidate reaches the threshold, so the order candidates are
  // checked in does not change a decision.
  std::size_t cap = 16;
  while (cap < 2 * n * std::size_t(B) + 1) cap <<= 1;
  const std::size_t mask = cap - 1;
  constexpr std::uint32_t kNone = 0xFFFFFFFFu;
  std::vector<std::uint64_t> slot_key(cap);
  std::vector<std::uint32_t> slot_head(cap, kNone);
  std::vector<std::uint32_t> entry_doc, entry_next;
  entry_doc.reserve(n * std::size_t(B) / 2 + 16);
  entry_next.reserve(n * std::size_t(B) / 2 + 16);
  auto find_slot = [&](std::uint64_t key) {
    std::size_t i = std::size_t(key * 0x9E3779B97F4A7C15ull >> 32) & mask;
    while (slot_head[i] != kNone && slot_key[i] != key) i = (i + 1) & mask;
    return i;
  };
  std::vector<std::uint64_t> keys(static_cast<std::size_t>(B));
  const double threshold = hasher.config().threshold;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t* sig = signatures.data() + i * std::size_t(P);
    bool is_dup = false;
    for (int b = 0; b < B; ++b) {
      Hasher128 h{static_cast<std::uint64_t>(b)};
      h.update(sig + b * R, std::size_t(R) * sizeof(std::uint32_t));
      keys[std::size_t(b)] = h.finish().lo;
      if (is_dup) continue;
      const std::size_t slot = find_slot(keys[std::size_t(b)]);
      for (std::uint32_t e = slot_head[slot]; e != kNone; e = entry_next[e])
        if (estimate_jaccard(sig, signatures.data() + std::size_t(entry_doc[e]) * std::size_t(P), P) >=
            threshold) {
          is_dup = true;
          break;
        }
    }
    dup[i] = is_dup;
    if (!is_dup)
      for (int b = 0; b < B; ++b) {
        const std::size_t slot = find_slot(keys[std::size_t(b)]);
        slot_key[slot] = keys[std::size_t(b)];
        entry_doc.push_back(std::uint32_t(i));
        entry_next.push_back(slot_head[slot]);
        slot_head[slot] = std::uint32_t(entry_doc.size() - 1);
      }
  }
  return dup;
}

}  // namespace strata::data
