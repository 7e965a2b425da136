// Document quality filters, after Gopher's heuristics (Rae et al. 2021, "Scaling Language
// Models: Methods, Analysis & Insights from Training Gopher", appendix A.1.1, "Quality
// filtering" and "Repetition removal"). Each rule is a pure function of the normalised text;
// a document is removed by the first rule it fails (in the order of FilterRule), and the
// report counts documents and characters per rule.
//
// Words are whitespace-separated tokens, lines are "\n"-separated; blank lines are ignored.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace strata::data {

enum class FilterRule {
  min_chars,             // fewer than min_chars characters (bytes of UTF-8)
  max_chars,             // more than max_chars
  min_words,             // fewer than min_words words                (Gopher: 50)
  max_words,             // more than max_words words                 (Gopher: 100,000)
  mean_word_length,      // mean word length outside [min, max]       (Gopher: 3..10)
  symbol_ratio,          // ("#" + "..." + "…") per word above max    (Gopher: 0.1)
  bullet_lines,          // lines starting with a bullet above max    (Gopher: 0.9)
  ellipsis_lines,        // lines ending in "..." or "…" above max     (Gopher: 0.3)
  alphabetic_words,      // words with an alphabetic character below min (Gopher: 0.8)
  duplicate_lines,       // fraction of lines that repeat an earlier line (Gopher: 0.30)
  duplicate_line_chars,  // fraction of characters in repeated lines  (Gopher: 0.20)
  top_ngram,             // characters in the most frequent n-gram, n = 2, 3, 4 (0.20, 0.18, 0.16)
  duplicate_ngrams,      // characters in repeated n-grams, n = 5..10 (0.15 .. 0.10)
};
inline constexpr int kNumFilterRules = 13;
const char* filter_rule_name(FilterRule r);  // "min_words", ...

struct FilterConfig {
  std::int64_t min_chars = 0;  // 0: no minimum
  std::int64_t max_chars = 0;  // 0: no maximum
  std::int64_t min_words = 50;
  std::int64_t max_words = 100000;  // 0: no maximum
  double min_mean_word_length = 3;
  double max_mean_word_length = 10;
  double max_symbol_ratio = 0.1;
  double max_bullet_lines = 0.9;
  double max_ellipsis_lines = 0.3;
  double min_alphabetic_words = 0.8;
  double max_duplicate_lines = 0.30;
  double max_duplicate_line_chars = 0.20;
  std::array<double, 3> max_top_ngram = {0.20, 0.18, 0.16};                          // n = 2, 3, 4
  std::array<double, 6> max_duplicate_ngram = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10};  // n = 5..10
};

// The first rule `text` fails, or nothing when it passes them all.
std::optional<FilterRule> check_quality(std::string_view text, const FilterConfig& config);

}  // namespace strata::data
