#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "data_test_util.hpp"
#include "strata/data/filters.hpp"
#include "strata/data/normalize.hpp"

using namespace strata::data;
using testing_util::paragraph;

namespace {
std::optional<FilterRule> check(const std::string& text, FilterConfig cfg = {}) {
  return check_quality(text, cfg);
}
}  // namespace

TEST(QualityFilters, OrdinaryProseOfEnoughWordsPassesEveryRule) {
  EXPECT_EQ(check(paragraph(1, 120)), std::nullopt);
}

TEST(QualityFilters, LengthRulesUseWordsAndCharacters) {
  EXPECT_EQ(check(paragraph(2, 20)), FilterRule::min_words);
  FilterConfig c;
  c.max_words = 50;
  EXPECT_EQ(check(paragraph(2, 80), c), FilterRule::max_words);
  c = {};
  c.min_chars = 100000;
  EXPECT_EQ(check(paragraph(2, 80), c), FilterRule::min_chars);
  c = {};
  c.max_chars = 100;
  EXPECT_EQ(check(paragraph(2, 80), c), FilterRule::max_chars);
}

TEST(QualityFilters, MeanWordLengthOutsideThreeToTenIsRemoved) {
  std::string short_words, long_words;
  for (int i = 0; i < 60; ++i) short_words += "a b ";
  for (int i = 0; i < 60; ++i) long_words += "internationalisation" + std::to_string(i) + " ";
  EXPECT_EQ(check(short_words), FilterRule::mean_word_length);
  EXPECT_EQ(check(long_words), FilterRule::mean_word_length);
}

TEST(QualityFilters, HashAndEllipsisSymbolsAboveOnePerTenWordsAreRemoved) {
  std::string s = paragraph(3, 60);
  for (int i = 0; i < 10; ++i) s += " #tag" + std::to_string(i) + " more...";
  EXPECT_EQ(check(s), FilterRule::symbol_ratio);
}

TEST(QualityFilters, BulletListsAndEllipsisLinesAreRemoved) {
  std::string bullets, ellipses;
  for (int i = 0; i < 12; ++i)
    bullets += "- item number " + std::to_string(i) + " about gardens and rivers\n";
  EXPECT_EQ(check(bullets), FilterRule::bullet_lines);
  for (int i = 0; i < 12; ++i)
    ellipses +=
        "and then the story went on and on for a long while into the night " + std::to_string(i) + "...\n";
  EXPECT_EQ(check(ellipses), FilterRule::ellipsis_lines);
}

TEST(QualityFilters, MostlyNonAlphabeticWordsAreRemoved) {
  std::string s;
  for (int i = 0; i < 60; ++i) s += std::to_string(1000 + i * 37) + " 3.14 ";
  s += "word";
  EXPECT_EQ(check(s), FilterRule::alphabetic_words);
}

TEST(QualityFilters, RepeatedLinesAreRemoved) {
  std::string s = paragraph(4, 60);
  for (int i = 0; i < 10; ++i) s += "\nclick here to subscribe to our newsletter";
  EXPECT_EQ(check(s), FilterRule::duplicate_lines);
}

TEST(QualityFilters, ATopBigramCoveringMuchOfTheTextIsRemoved) {
  std::string s;
  for (int i = 0; i < 30; ++i) s += "purchase today item" + std::to_string(i) + " ";
  EXPECT_EQ(check(s), FilterRule::top_ngram);
}

TEST(QualityFilters, RepeatedLongNgramsAreRemoved) {
  // The same 12-word sentence four times inside otherwise distinct text, on one line.
  const std::string sentence = "the quick brown fox jumps over the lazy dog near the river ";
  std::string s;
  for (int i = 0; i < 60; ++i) s += "lorem" + std::to_string(i) + " ";
  for (int i = 0; i < 3; ++i) s += sentence;
  EXPECT_EQ(check(s), FilterRule::duplicate_ngrams);
}

namespace {

// The rules written plainly (Gopher, app. A.1.1, as docs/data-pipeline.md states them): words
// and n-grams as strings in ordered maps, every position of every n counted. The fast
// check_quality (hashes, one byte pass, only positions whose shorter n-gram repeats) must
// decide exactly as this does.
std::optional<FilterRule> reference_check(std::string_view text, const FilterConfig& cfg) {
  const auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  if (cfg.min_chars > 0 && std::int64_t(text.size()) < cfg.min_chars) return FilterRule::min_chars;
  if (cfg.max_chars > 0 && std::int64_t(text.size()) > cfg.max_chars) return FilterRule::max_chars;
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < text.size();) {
    while (i < text.size() && space(text[i])) ++i;
    const std::size_t b = i;
    while (i < text.size() && !space(text[i])) ++i;
    if (i > b) words.push_back(text.substr(b, i - b));
  }
  const double W = double(words.size());
  if (std::int64_t(words.size()) < cfg.min_words) return FilterRule::min_words;
  if (cfg.max_words > 0 && std::int64_t(words.size()) > cfg.max_words) return FilterRule::max_words;
  if (words.empty()) return std::nullopt;
  double code_points = 0, alpha = 0, symbols = 0;
  for (std::string_view w : words) {
    bool letter = false;
    for (std::size_t p = 0; p < w.size(); ++p) {
      const auto c = static_cast<unsigned char>(w[p]);
      code_points += (c & 0xC0) != 0x80;
      letter |= c >= 0x80 || std::isalpha(c);
    }
    alpha += letter;
    for (std::size_t p = 0; p < w.size(); ++p)
      if (w[p] == '#')
        ++symbols;
      else if (w.substr(p, 3) == "..." || w.substr(p, 3) == "\xE2\x80\xA6")
        ++symbols, p += 2;
  }
  if (code_points / W < cfg.min_mean_word_length || code_points / W > cfg.max_mean_word_length)
    return FilterRule::mean_word_length;
  if (symbols / W > cfg.max_symbol_ratio) return FilterRule::symbol_ratio;
  std::vector<std::string_view> lines;
  for (std::size_t i = 0; i <= text.size();) {
    std::size_t e = std::min(text.find('\n', i), text.size());
    std::string_view l = text.substr(i, e - i);
    while (!l.empty() && space(l.front())) l.remove_prefix(1);
    while (!l.empty() && space(l.back())) l.remove_suffix(1);
    if (!l.empty()) lines.push_back(l);
    i = e + 1;
  }
  if (!lines.empty()) {
    double bullets = 0, ellipses = 0;
    for (std::string_view l : lines) {
      for (const char* b : {"- ", "* ", "\xE2\x80\xA2", "\xE2\x80\xA3", "\xE2\x97\xA6"})
        if (l.starts_with(b)) {
          ++bullets;
          break;
        }
      ellipses += l.ends_with("...") || l.ends_with("\xE2\x80\xA6");
    }
    if (bullets / double(lines.size()) > cfg.max_bullet_lines) return FilterRule::bullet_lines;
    if (ellipses / double(lines.size()) > cfg.max_ellipsis_lines) return FilterRule::ellipsis_lines;
  }
  if (alpha / W < cfg.min_alphabetic_words) return FilterRule::alphabetic_words;
  if (!lines.empty()) {
    std::map<std::string_view, int> seen;
    double dup = 0, dup_chars = 0, chars = 0;
    for (std::string_view l : lines) {
      chars += double(l.size());
      if (++seen[l] > 1) ++dup, dup_chars += double(l.size());
    }
    if (dup / double(lines.size()) > cfg.max_duplicate_lines) return FilterRule::duplicate_lines;
    if (chars > 0 && dup_chars / chars > cfg.max_duplicate_line_chars)
      return FilterRule::duplicate_line_chars;
  }
  double total = 0;
  for (std::string_view w : words) total += double(w.size());
  using Gram = std::vector<std::string_view>;
  const auto gram_at = [&](std::size_t i, int n) {
    return Gram(words.begin() + std::ptrdiff_t(i), words.begin() + std::ptrdiff_t(i) + n);
  };
  const auto chars_of = [](const Gram& g) {
    double c = 0;
    for (std::string_view w : g) c += double(w.size());
    return c;
  };
  for (int n = 2; n <= 4; ++n) {
    if (words.size() < std::size_t(n)) return std::nullopt;
    std::map<Gram, int> count;
    int best = 0;
    Gram best_gram;
    for (std::size_t i = 0; i + std::size_t(n) <= words.size(); ++i) {
      const Gram g = gram_at(i, n);
      const int c = ++count[g];
      if (c > best) best = c, best_gram = g;  // the first to reach each new top count
    }
    if (best > 1 && best * chars_of(best_gram) / total > cfg.max_top_ngram[std::size_t(n - 2)])
      return FilterRule::top_ngram;
  }
  for (int n = 5; n <= 10; ++n) {
    if (words.size() < std::size_t(n)) break;
    std::map<Gram, int> count;
    for (std::size_t i = 0; i + std::size_t(n) <= words.size(); ++i) ++count[gram_at(i, n)];
    std::vector<bool> covered(words.size());
    for (std::size_t i = 0; i + std::size_t(n) <= words.size(); ++i)
      if (count[gram_at(i, n)] > 1)
        for (int k = 0; k < n; ++k) covered[i + std::size_t(k)] = true;
    double dup = 0;
    for (std::size_t i = 0; i < words.size(); ++i) dup += covered[i] ? double(words[i].size()) : 0;
    if (dup / total > cfg.max_duplicate_ngram[std::size_t(n - 5)]) return FilterRule::duplicate_ngrams;
  }
  return std::nullopt;
}

// A document of repeated phrases, symbols, bullets and non-ASCII words, from `rng`.
std::string random_document(std::mt19937_64& rng) {
  static const char* vocab[] = {"the",
                                "river",
                                "and",
                                "of",
                                "light",
                                "#tag",
                                "wait...",
                                "so\xE2\x80\xA6",
                                "caf\xC3\xA9",
                                "\xE6\x97\xA5\xE6\x9C\xAC",
                                "1999",
                                "....",
                                "a",
                                "mountain",
                                "to",
                                "3.14",
                                "-",
                                "*",
                                "\xE2\x80\xA2",
                                "garden",
                                "people",
                                "ancient",
                                "x",
                                "internationalisation"};
  const std::size_t V = std::size(vocab);
  const std::size_t vocab_used = 3 + rng() % (V - 2);  // small vocabularies repeat n-grams
  std::vector<std::string> phrases;
  for (int p = 0; p < 4; ++p) {
    std::string ph;
    for (int k = 0, n = 2 + int(rng() % 10); k < n; ++k)
      ph += std::string(k ? " " : "") + vocab[rng() % vocab_used];
    phrases.push_back(ph);
  }
  std::string doc;
  for (int k = 0, n = int(rng() % 50 == 0 ? 3000 : rng() % 120); k < n; ++k) {
    if (rng() % 3 == 0)
      doc += phrases[rng() % phrases.size()];
    else
      doc += vocab[rng() % vocab_used];
    const int sep = int(rng() % 10);
    doc += sep == 0 ? "\n" : sep == 1 ? "\n\n" : sep == 2 ? " \t " : " ";
  }
  return doc;
}

}  // namespace

TEST(QualityFilters, DecideLikeAPlainReferenceOnRandomDocumentsAndThresholds) {
  std::mt19937_64 rng(7);
  std::map<std::string, int> fired;
  for (int i = 0; i < 4000; ++i) {
    const std::string doc = random_document(rng);
    FilterConfig cfg;
    cfg.min_words = std::int64_t(rng() % 8);
    if (i % 2) {  // thresholds from each rule's range, so that every rule decides some documents
      const auto u = [&] { return double(rng() % 1000) / 1000.0; };
      cfg.max_symbol_ratio = 0.2 + u(), cfg.max_bullet_lines = u(), cfg.max_ellipsis_lines = u();
      cfg.min_alphabetic_words = u() * 0.8, cfg.max_duplicate_lines = u(),
      cfg.max_duplicate_line_chars = rng() % 2 ? u() * 0.4 : 0.3 + u();
      for (double& t : cfg.max_top_ngram) t = u();
      for (double& t : cfg.max_duplicate_ngram) t = u() - (rng() % 50 == 0 ? 0.5 : 0.0);  // rarely negative
      cfg.min_mean_word_length = 1 + u() * 3, cfg.max_mean_word_length = 4 + u() * 10;
    }
    const auto want = reference_check(doc, cfg);
    const auto got = check_quality(doc, cfg);
    ASSERT_EQ(got, want) << "document " << i << ": got " << (got ? filter_rule_name(*got) : "kept")
                         << ", want " << (want ? filter_rule_name(*want) : "kept") << "\n"
                         << doc;
    ++fired[want ? filter_rule_name(*want) : "kept"];
  }
  for (const char* rule :
       {"kept", "min_words", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
        "alphabetic_words", "duplicate_lines", "duplicate_line_chars", "top_ngram", "duplicate_ngrams"})
    EXPECT_GE(fired[rule], 5) << "too few documents decided by " << rule;
  for (const auto& [rule, n] : fired) std::printf("%s %d; ", rule.c_str(), n);
  std::printf("\n");
}

TEST(QualityFilters, EveryRuleHasAName) {
  for (int r = 0; r < kNumFilterRules; ++r) EXPECT_STRNE(filter_rule_name(FilterRule(r)), "");
  EXPECT_STREQ(filter_rule_name(FilterRule::min_words), "min_words");
}

TEST(Normalize, InvalidUtf8IsReplacedAndCounted) {
  std::string s = "ok \xff bad \xc3 end \xe2\x82";  // stray byte, truncated 2-byte, truncated 3-byte
  EXPECT_EQ(repair_utf8(s), 3u);
  EXPECT_EQ(s, "ok \xEF\xBF\xBD bad \xEF\xBF\xBD end \xEF\xBF\xBD");
  std::string fine = "caf\xc3\xa9";
  EXPECT_EQ(repair_utf8(fine), 0u);
  std::string surrogate = "\xed\xa0\x80";  // U+D800 encoded: invalid in UTF-8
  EXPECT_GT(repair_utf8(surrogate), 0u);
}

TEST(Normalize, NfcWhitespaceAndControlCharacters) {
  std::string s = "Cafe\xcc\x81\r\n\r\n\r\n\r\nline\xc2\xa0two   \n\tindented\x01\xe2\x80\x8b\n  \n \n";
  EXPECT_TRUE(normalize_text(s));
  EXPECT_EQ(s, "Caf\xc3\xa9\n\nline two\n\tindented");
  std::string clean = "already clean\n\n  indented code";
  EXPECT_FALSE(normalize_text(clean));
  std::string blank = " \n\t\n ";
  normalize_text(blank);
  EXPECT_EQ(blank, "");
}
