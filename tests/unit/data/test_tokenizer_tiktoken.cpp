// tiktoken rank files (r50k_base, cl100k_base, o200k_base) against ids from the independent
// JavaScript encoder gpt-tokenizer (tests/fixtures/tiktoken_encoding.json).
#include <gtest/gtest.h>

#include "tokenizer_test_util.hpp"

using namespace strata::data;
using namespace strata::data::test;

namespace {

void expect_fixture(const Tokenizer& t, const std::string& key) {
  const auto fx = fixture("tiktoken_encoding.json");
  int failures = 0, n = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    const auto expected = c[key].get<std::vector<std::int32_t>>();
    const auto got = t.encode(text);
    ++n;
    if (got != expected && ++failures <= 5) ADD_FAILURE() << key << " text: " << nlohmann::json(text).dump();
    if (t.decode(got) != text && ++failures <= 5)
      ADD_FAILURE() << key << " round trip: " << nlohmann::json(text).dump();
  }
  EXPECT_GE(n, 300);
  EXPECT_EQ(failures, 0);
}

}  // namespace

TEST(TiktokenTokenizer, Cl100kEncodesEveryFixtureStringLikeTheReferenceEncoder) {
  const auto t = load_tokenizer("cl100k_base");
  EXPECT_EQ(t->name(), "cl100k_base");
  EXPECT_EQ(t->eos_id(), 100257);
  EXPECT_EQ(t->vocab_size(), 100277);
  expect_fixture(*t, "cl100k_base");
}

TEST(TiktokenTokenizer, O200kEncodesEveryFixtureStringLikeTheReferenceEncoder) {
  const auto t = load_tokenizer((tokenizer_dir() / "o200k_base.tiktoken").string());
  EXPECT_EQ(t->eos_id(), 199999);
  expect_fixture(*t, "o200k_base");
}

TEST(TiktokenTokenizer, R50kGivesTheSameIdsAsGpt2sMergeFiles) {
  const auto t = load_tokenizer("r50k_base");
  EXPECT_EQ(t->eos_id(), 50256);
  // The fixture is held here: a temporary's ["cases"] in the range-for would dangle.
  const nlohmann::json cases = fixture("gpt2_encoding.json")["cases"];
  for (const auto& c : cases) {
    const std::string text = c["text"];
    ASSERT_EQ(t->encode(text), c["ids"].get<std::vector<std::int32_t>>()) << text;
  }
}

TEST(TiktokenTokenizer, UnknownEncodingNameIsAnErrorNamingTheFile) {
  TempDir dir;
  const auto path = dir.path() / "my_encoding.tiktoken";
  write_text(path, "IQ== 0\n");
  try {
    load_tokenizer(path.string());
    FAIL() << "expected an error";
  } catch (const strata::Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_encoding.tiktoken"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cl100k_base"), std::string::npos) << e.what();
  }
}
