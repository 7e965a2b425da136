// Gopher-style quality and repetition filters (filters.hpp; Rae et al. 2021, app. A.1.1).
#include "strata/data/filters.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "strata/data/hash.hpp"

namespace strata::data {

const char* filter_rule_name(FilterRule r) {
  static constexpr const char* names[kNumFilterRules] = {
      "min_chars",  "max_chars",        "min_words",       "max_words",          "mean_word_length",
      "symbol_ratio", "bullet_lines",   "ellipsis_lines",  "alphabetic_words",   "duplicate_lines",
      "duplicate_line_chars", "top_ngram", "duplicate_ngrams"};
  return names[int(r)];
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct Word {
  std::string_view text;
  std::uint64_t hash;
};

// Any letter: ASCII letters, or any non-ASCII byte (letters of other scripts; their
// punctuation is rare enough not to matter for an 80 % threshold).
bool has_alpha(std::string_view w) {
  for (unsigned char c : w)
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    else if (c >= 0x80) return true;
  return false;
}

// Number of code points (UTF-8 lead bytes) in w.
std::size_t code_points(std::string_view w) {
  std::size_t n = 0;
  for (unsigned char c : w) n += (c & 0xC0) != 0x80;
  return n;
}

std::uint64_t combine(std::uint64_t a, std::uint64_t b) { return mix64(a * 0x9E3779B97F4A7C15ull + b); }

}  // namespace

std::optional<FilterRule> check_quality(std::string_view text, const FilterConfig& cfg) {
  const auto n_chars = std::int64_t(text.size());
  if (cfg.min_chars > 0 && n_chars < cfg.min_chars) return FilterRule::min_chars;
  if (cfg.max_chars > 0 && n_chars > cfg.max_chars) return FilterRule::max_chars;

  std::vector<Word> words;
  words.reserve(text.size() / 5 + 1);
  for (std::size_t i = 0; i < text.size();) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) {
      const std::string_view w = text.substr(start, i - start);
      words.push_back({w, hash64(w)});
    }
  }
  const auto n_words = std::int64_t(words.size());
  if (n_words < cfg.min_words) return FilterRule::min_words;
  if (cfg.max_words > 0 && n_words > cfg.max_words) return FilterRule::max_words;
  if (n_words == 0) return std::nullopt;  // min_words = 0 and an empty text: nothing to measure

  std::size_t word_chars = 0, alpha = 0, symbols = 0;
  for (const Word& w : words) {
    word_chars += code_points(w.text);
    alpha += has_alpha(w.text);
    for (std::size_t p = 0; p < w.text.size(); ++p) {
      if (w.text[p] == '#') ++symbols;
      else if (w.text.compare(p, 3, "...") == 0) ++symbols, p += 2;
      else if (w.text.compare(p, 3, "\xE2\x80\xA6") == 0) ++symbols, p += 2;  // "…"
    }
  }
  const double mean_len = double(word_chars) / double(n_words);
  if (mean_len < cfg.min_mean_word_length || mean_len > cfg.max_mean_word_length)
    return FilterRule::mean_word_length;
  if (double(symbols) / double(n_words) > cfg.max_symbol_ratio) return FilterRule::symbol_ratio;

  // Lines.
  std::vector<std::string_view> lines;
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
  if (!lines.empty()) {
    std::size_t dup_lines = 0, dup_line_chars = 0, line_chars = 0;
    std::unordered_set<std::uint64_t> seen;
    seen.reserve(lines.size() * 2);
    for (std::string_view l : lines) {
      line_chars += l.size();
      if (!seen.insert(hash64(l)).second) ++dup_lines, dup_line_chars += l.size();
    }
    if (double(dup_lines) / double(lines.size()) > cfg.max_duplicate_lines) return FilterRule::duplicate_lines;
    if (line_chars > 0 && double(dup_line_chars) / double(line_chars) > cfg.max_duplicate_line_chars)
      return FilterRule::duplicate_line_chars;
  }

  // n-grams of words. Characters are counted as the words' characters (Gopher counts the
  // characters of the n-gram's words).
  std::vector<std::size_t> wlen(words.size());
  for (std::size_t i = 0; i < words.size(); ++i) wlen[i] = words[i].text.size();
  std::size_t total = 0;
  for (auto l : wlen) total += l;
  if (total == 0) return std::nullopt;
  std::unordered_map<std::uint64_t, std::uint32_t> counts;
  std::vector<std::uint64_t> gram;
  // Top n-gram, n = 2..4: the characters in all occurrences of the most frequent n-gram.
  for (int n = 2; n <= 4; ++n) {
    if (std::int64_t(words.size()) < n) break;
    counts.clear();
    counts.reserve(words.size());
    std::uint64_t best_hash = 0;
    std::uint32_t best = 0;
    std::size_t best_len = 0;
    for (std::size_t i = 0; i + std::size_t(n) <= words.size(); ++i) {
      std::uint64_t h = words[i].hash;
      std::size_t len = wlen[i];
      for (int k = 1; k < n; ++k) h = combine(h, words[i + std::size_t(k)].hash), len += wlen[i + std::size_t(k)];
      const std::uint32_t c = ++counts[h];
      if (c > best || (c == best && h == best_hash)) best = c, best_hash = h, best_len = len;
    }
    if (best > 1 && double(best) * double(best_len) / double(total) > cfg.max_top_ngram[std::size_t(n - 2)])
      return FilterRule::top_ngram;
  }
  // Duplicate n-grams, n = 5..10: the characters of words covered by an n-gram that occurs
  // more than once (each word counted once).
  std::vector<std::uint8_t> covered(words.size());
  for (int n = 5; n <= 10; ++n) {
    if (std::int64_t(words.size()) < n) break;
    gram.assign(words.size() - std::size_t(n) + 1, 0);
    counts.clear();
    for (std::size_t i = 0; i < gram.size(); ++i) {
      std::uint64_t h = words[i].hash;
      for (int k = 1; k < n; ++k) h = combine(h, words[i + std::size_t(k)].hash);
      gram[i] = h;
      ++counts[h];
    }
    std::fill(covered.begin(), covered.end(), 0);
    for (std::size_t i = 0; i < gram.size(); ++i)
      if (counts[gram[i]] > 1)
        for (int k = 0; k < n; ++k) covered[i + std::size_t(k)] = 1;
    std::size_t dup_chars = 0;
    for (std::size_t i = 0; i < words.size(); ++i) dup_chars += covered[i] ? wlen[i] : 0;
    if (double(dup_chars) / double(total) > cfg.max_duplicate_ngram[std::size_t(n - 5)])
      return FilterRule::duplicate_ngrams;
  }
  return std::nullopt;
}

}  // namespace strata::data
