// The hand-written pre-tokeniser scanners against the splits their regexes define.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "strata/data/pretokenizer.hpp"

using namespace strata::data;

namespace {

std::vector<std::string> split(PreTokenizer kind, std::string_view text) {
  std::vector<std::string> out;
  for (auto p : pretokenize(kind, text)) out.emplace_back(p);
  return out;
}
using V = std::vector<std::string>;

}  // namespace

TEST(PreTokenizerGpt2, SplitsWordsWithTheirLeadingSpace) {
  EXPECT_EQ(split(PreTokenizer::gpt2, "Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "abc123 45"), (V{"abc", "123", " 45"}));
}

TEST(PreTokenizerGpt2, WhitespaceRunGivesItsLastSpaceToTheNextWord) {
  EXPECT_EQ(split(PreTokenizer::gpt2, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "end   "), (V{"end", "   "}));  // \s+ at the end of the text
  EXPECT_EQ(split(PreTokenizer::gpt2, "x \n y"), (V{"x", " \n", " y"}));
}

TEST(PreTokenizerGpt2, ContractionsAreCaseSensitiveAndOnlyAtAPieceStart) {
  EXPECT_EQ(split(PreTokenizer::gpt2, "I'm you're"), (V{"I", "'m", " you", "'re"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "I'M"), (V{"I", "'", "M"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "?'s"), (V{"?'", "s"}));
}

TEST(PreTokenizerGpt2, UnicodeLettersNumbersAndMarks) {
  EXPECT_EQ(split(PreTokenizer::gpt2, "café ½٣"), (V{"café", " ½٣"}));
  // A combining mark is neither letter nor number: it splits from the letters.
  EXPECT_EQ(split(PreTokenizer::gpt2, "e\u0301x"), (V{"e", "\u0301", "x"}));
  EXPECT_EQ(split(PreTokenizer::gpt2, "日本\u3000語"), (V{"日本", "\u3000", "語"}));
}

TEST(PreTokenizerCl100k, NumbersGroupInThreesAndOnePrefixCharJoinsLetters) {
  EXPECT_EQ(split(PreTokenizer::cl100k, "1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split(PreTokenizer::cl100k, "\tword (x)"), (V{"\tword", " (", "x", ")"}));
  EXPECT_EQ(split(PreTokenizer::cl100k, "I'M HERE"), (V{"I", "'M", " HERE"}));
}

TEST(PreTokenizerCl100k, LineBreaksEndSpaceRuns) {
  EXPECT_EQ(split(PreTokenizer::cl100k, "a  \n  b"), (V{"a", "  \n", " ", " b"}));
  EXPECT_EQ(split(PreTokenizer::cl100k, "a\n\n"), (V{"a", "\n\n"}));  // \s+$
  EXPECT_EQ(split(PreTokenizer::cl100k, "x!!\n\ny"), (V{"x", "!!\n\n", "y"}));
}

TEST(PreTokenizerO200k, CaseRunsSplitCamelCaseAndKeepContractions) {
  EXPECT_EQ(split(PreTokenizer::o200k, "HTTPServerError"), (V{"HTTPServer", "Error"}));
  EXPECT_EQ(split(PreTokenizer::o200k, "camelCase"), (V{"camel", "Case"}));
  EXPECT_EQ(split(PreTokenizer::o200k, "they'll WE'LL"), (V{"they'll", " WE'LL"}));
  EXPECT_EQ(split(PreTokenizer::o200k, "a/b//\n"), (V{"a", "/b", "//\n"}));
}

TEST(PreTokenizer, PiecesConcatenateToAnyInputIncludingInvalidUtf8) {
  std::mt19937 rng(7);
  for (PreTokenizer kind : {PreTokenizer::gpt2, PreTokenizer::cl100k, PreTokenizer::o200k}) {
    for (int trial = 0; trial < 200; ++trial) {
      std::string text(rng() % 64, '\0');
      // 9 = the literal's 8 characters and its terminating zero byte (index 9 read past it)
      for (char& c : text) c = char(rng() % 4 == 0 ? rng() % 256 : " a1!\n\xc3\xa9'"[rng() % 9]);
      std::string joined;
      for (auto p : pretokenize(kind, text)) {
        ASSERT_FALSE(p.empty());
        joined += p;
      }
      ASSERT_EQ(joined, text) << pretokenizer_name(kind);
    }
  }
}
