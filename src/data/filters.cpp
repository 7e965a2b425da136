// Gopher-style quality and repetition filters (filters.hpp; Rae et al. 2021, app. A.1.1).
#include "strata/data/filters.hpp"

#include <algorithm>
#include <vector>

#include "strata/data/hash.hpp"

namespace strata::data {

const char* filter_rule_name(FilterRule r) {
  static constexpr const char* names[kNumFilterRules] = {"min_chars",
                                                         "max_chars",
                                                         "min_words",
                                                         "max_words",
                                                         "mean_word_length",
                                                         "symbol_ratio",
                                                         "bullet_lines",
                                                         "ellipsis_lines",
                                                         "alphabetic_words",
                                                         "duplicate_lines",
                                                         "duplicate_line_chars",
                                                         "top_ngram",
                                                         "duplicate_ngrams"};
  return names[int(r)];
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct Word {
  std::uint64_t hash;  // table_hash of its bytes: the rules compare words only for equality
  std::size_t len;     // bytes
};

std::uint64_t combine(std::uint64_t a, std::uint64_t b) { return mix64(a * 0x9E3779B97F4A7C15ull + b); }

// Counts of 64-bit keys (already well-mixed hashes): open addressing with linear probing over
// a table that is reused from document to document (a generation stamp marks live slots, so
// clearing is O(1)). The profile of prepare showed std::unordered_map's node allocations and
// pointer chasing as the largest cost of the filters.
class CountTable {
 public:
  void reset(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (cap > keys_.size()) {
      keys_.assign(cap, 0);
      counts_.assign(cap, 0);
      stamps_.assign(cap, 0);
      gen_ = 0;
    }
    mask_ = cap - 1;
    if (++gen_ == 0) {  // the stamps wrapped: clear them once
      std::fill(stamps_.begin(), stamps_.end(), 0);
      gen_ = 1;
    }
  }
  // ++count of key; returns the new count (and the key's slot, for at()).
  std::uint32_t add(std::uint64_t key, std::uint32_t* slot = nullptr) {
    std::size_t i = std::size_t(key * 0x9E3779B97F4A7C15ull >> 32) & mask_;
    for (;; i = (i + 1) & mask_) {
      if (stamps_[i] != gen_) {
        stamps_[i] = gen_, keys_[i] = key, counts_[i] = 1;
        if (slot) *slot = std::uint32_t(i);
        return 1;
      }
      if (keys_[i] == key) {
        if (slot) *slot = std::uint32_t(i);
        return ++counts_[i];
      }
    }
  }
  std::uint32_t at(std::uint32_t slot) const { return counts_[slot]; }

 private:
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> counts_, stamps_;
  std::uint32_t gen_ = 0;
  std::size_t mask_ = 0;
};

// Per-thread buffers: no allocation per document once they have grown.
struct Scratch {
  std::vector<Word> words;
  std::vector<std::string_view> lines;
  std::vector<std::uint64_t> gram, wsum;
  std::vector<std::size_t> glen;
  std::vector<std::uint32_t> cand, next, slots;
  CountTable counts;
};

}  // namespace

// One pass over the bytes splits the words and counts what the word rules need; the n-gram
// rules then run on the word hashes. A repeated n-gram starts with a repeated (n-1)-gram, so
// the n-gram passes for n >= 3 visit only the positions whose (n-1)-gram repeats (in text order,
// so the top n-gram's tie rule sees the same sequence of counts): the decisions are those of
// counting every position (tests/unit/data/test_filters.cpp checks them against a plain
// reference that counts string n-grams).
std::optional<FilterRule> check_quality(std::string_view text, const FilterConfig& cfg) {
  const auto n_chars = std::int64_t(text.size());
  if (cfg.min_chars > 0 && n_chars < cfg.min_chars) return FilterRule::min_chars;
  if (cfg.max_chars > 0 && n_chars > cfg.max_chars) return FilterRule::max_chars;

  thread_local Scratch sc;
  std::vector<Word>& words = sc.words;
  words.clear();
  // Words, and per word: code points (UTF-8 lead bytes), whether it has a letter (an ASCII
  // letter or any non-ASCII byte: letters of other scripts), and its symbols: '#', and
  // non-overlapping "..." and "…" read left to right.
  std::size_t word_chars = 0, alpha = 0, symbols = 0;
  const auto* b = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  for (std::size_t i = 0; i < size;) {
    while (i < size && is_space(char(b[i]))) ++i;
    if (i == size) break;
    const std::size_t start = i;
    bool letter = false;
    std::size_t skip = 0;  // bytes of a symbol just counted
    for (; i < size && !is_space(char(b[i])); ++i) {
      const unsigned char c = b[i];
      word_chars += (c & 0xC0) != 0x80;
      letter |= c >= 0x80 || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
      if (skip > 0) {
        --skip;
      } else if (c == '#') {
        ++symbols;
      } else if (c == '.' && i + 2 < size && b[i + 1] == '.' && b[i + 2] == '.') {
        ++symbols, skip = 2;
      } else if (c == 0xE2 && i + 2 < size && b[i + 1] == 0x80 && b[i + 2] == 0xA6) {
        ++symbols, skip = 2;
      }
    }
    alpha += letter;
    words.push_back({table_hash(b + start, i - start), i - start});
  }
  const auto n_words = std::int64_t(words.size());
  if (n_words < cfg.min_words) return FilterRule::min_words;
  if (cfg.max_words > 0 && n_words > cfg.max_words) return FilterRule::max_words;
  if (n_words == 0) return std::nullopt;  // min_words = 0 and an empty text: nothing to measure

  const double mean_len = double(word_chars) / double(n_words);
  if (mean_len < cfg.min_mean_word_length || mean_len > cfg.max_mean_word_length)
    return FilterRule::mean_word_length;
  if (double(symbols) / double(n_words) > cfg.max_symbol_ratio) return FilterRule::symbol_ratio;

  // Lines.
  std::vector<std::string_view>& lines = sc.lines;
  lines.clear();
  for (std::size_t i = 0; i <= text.size();) {
    std::size_t e = text.find('\n', i);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(i, e - i);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
    i = e + 1;
  }
  if (!lines.empty()) {
    std::size_t bullets = 0, ellipses = 0;
    for (std::string_view l : lines) {
      if (l.starts_with("- ") || l.starts_with("* ") || l.starts_with("\xE2\x80\xA2") /* • */ ||
          l.starts_with("\xE2\x80\xA3") /* ‣ */ || l.starts_with("\xE2\x97\xA6") /* ◦ */)
        ++bullets;
      if (l.ends_with("...") || l.ends_with("\xE2\x80\xA6")) ++ellipses;
    }
    const double nl = double(lines.size());
    if (double(bullets) / nl > cfg.max_bullet_lines) return FilterRule::bullet_lines;
    if (double(ellipses) / nl > cfg.max_ellipsis_lines) return FilterRule::ellipsis_lines;
  }
  if (double(alpha) / double(n_words) < cfg.min_alphabetic_words) return FilterRule::alphabetic_words;
  CountTable& counts = sc.counts;
  if (!lines.empty()) {
    std::size_t dup_lines = 0, dup_line_chars = 0, line_chars = 0;
    counts.reset(lines.size());
    for (std::string_view l : lines) {
      line_chars += l.size();
      if (counts.add(table_hash(l)) > 1) ++dup_lines, dup_line_chars += l.size();
    }
    if (double(dup_lines) / double(lines.size()) > cfg.max_duplicate_lines)
      return FilterRule::duplicate_lines;
    if (line_chars > 0 && double(dup_line_chars) / double(line_chars) > cfg.max_duplicate_line_chars)
      return FilterRule::duplicate_line_chars;
  }

  // n-grams of words. Characters are counted as the words' characters (Gopher counts the
  // characters of the n-gram's words). The hash of the n-gram at i is
  // combine(...combine(combine(h_i, h_i+1), h_i+2)..., h_i+n-1), built from the (n-1)-gram's
  // in place: gram[i] = combine(gram[i], h_i+n-1); glen[i] is the n-gram's characters.
  const std::size_t W = words.size();
  std::vector<std::uint64_t>& wsum = sc.wsum;  // wsum[k] = characters of words [0, k)
  wsum.resize(W + 1);
  wsum[0] = 0;
  for (std::size_t i = 0; i < W; ++i) wsum[i + 1] = wsum[i] + words[i].len;
  const std::uint64_t total = wsum[W];
  if (total == 0) return std::nullopt;
  std::vector<std::uint64_t>& gram = sc.gram;
  std::vector<std::size_t>& glen = sc.glen;
  gram.resize(W);
  glen.resize(W);
  for (std::size_t i = 0; i < W; ++i) gram[i] = words[i].hash, glen[i] = words[i].len;
  // cand: the positions whose (n-1)-gram repeats (n = 2: every position), ascending.
  std::vector<std::uint32_t>& cand = sc.cand;
  std::vector<std::uint32_t>& next = sc.next;
  std::vector<std::uint32_t>& slots = sc.slots;
  cand.resize(W);
  for (std::size_t i = 0; i < W; ++i) cand[i] = std::uint32_t(i);
  // Extends the n-grams of the candidates that have one (a shorter tail has none) and counts
  // them; slots[k] is the count table's slot of cand[k]. on_count(k, running count) in order.
  auto count_pass = [&](std::size_t n, auto&& on_count) {
    const std::size_t G = W - n + 1;
    std::size_t m = 0;
    while (m < cand.size() && cand[m] < G) ++m;  // ascending: the ones with an n-gram come first
    cand.resize(m);
    counts.reset(m);
    slots.resize(m);
    for (std::size_t k = 0; k < m; ++k) {
      const std::size_t i = cand[k];
      gram[i] = combine(gram[i], words[i + n - 1].hash);
      glen[i] += words[i + n - 1].len;
      on_count(k, counts.add(gram[i], &slots[k]));
    }
  };
  // Keeps the candidates whose n-gram occurs more than once.
  auto keep_repeated = [&] {
    next.clear();
    for (std::size_t k = 0; k < cand.size(); ++k)
      if (counts.at(slots[k]) > 1) next.push_back(cand[k]);
    cand.swap(next);
  };
  // Top n-gram, n = 2..4: the characters in all occurrences of the most frequent n-gram (the
  // first to reach the top count, in text order).
  for (int n = 2; n <= 4; ++n) {
    if (W < std::size_t(n)) return std::nullopt;  // n-grams of every larger n are absent too
    std::uint64_t best_hash = 0;
    std::uint32_t best = 0;
    std::size_t best_len = 0;
    count_pass(std::size_t(n), [&](std::size_t k, std::uint32_t c) {
      const std::uint64_t h = gram[cand[k]];
      if (c > best || (c == best && h == best_hash)) best = c, best_hash = h, best_len = glen[cand[k]];
    });
    if (best > 1 && double(best) * double(best_len) / double(total) > cfg.max_top_ngram[std::size_t(n - 2)])
      return FilterRule::top_ngram;
    keep_repeated();
  }
  // Duplicate n-grams, n = 5..10: the characters of words covered by an n-gram that occurs
  // more than once (each word counted once). A repeated (n+1)-gram starts with a repeated
  // n-gram, so once no n-gram repeats no longer one does: their shares are 0 from there on.
  bool any_threshold_negative = false;
  for (double t : cfg.max_duplicate_ngram) any_threshold_negative |= t < 0;
  for (int n = 5; n <= 10; ++n) {
    if (W < std::size_t(n)) break;
    count_pass(std::size_t(n), [](std::size_t, std::uint32_t) {});
    keep_repeated();
    if (cand.empty() && !any_threshold_negative) break;
    // The union of [i, i + n) over the repeated positions (ascending), in characters.
    std::uint64_t dup_chars = 0;
    std::size_t run_start = 0, run_end = 0;
    for (const std::uint32_t i : cand) {
      if (i > run_end) dup_chars += wsum[run_end] - wsum[run_start], run_start = i;
      run_end = std::max<std::size_t>(run_end, i + std::size_t(n));
    }
    dup_chars += wsum[run_end] - wsum[run_start];
    if (double(dup_chars) / double(total) > cfg.max_duplicate_ngram[std::size_t(n - 5)])
      return FilterRule::duplicate_ngrams;
  }
  return std::nullopt;
}

}  // namespace strata::data
