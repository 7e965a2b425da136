#include <gtest/gtest.h>

#include "data_test_util.hpp"
#include "strata/data/filters.hpp"
#include "strata/data/normalize.hpp"

using namespace strata::data;
using testing_util::paragraph;

namespace {
std::optional<FilterRule> check(const std::string& text, FilterConfig cfg = {}) { return check_quality(text, cfg); }
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
  for (int i = 0; i < 12; ++i) bullets += "- item number " + std::to_string(i) + " about gardens and rivers\n";
  EXPECT_EQ(check(bullets), FilterRule::bullet_lines);
  for (int i = 0; i < 12; ++i)
    ellipses += "and then the story went on and on for a long while into the night " + std::to_string(i) + "...\n";
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
