// Loading errors name the file (or spec) and say what is wrong with it.
#include <gtest/gtest.h>

#include "strata/core/error.hpp"
#include "tokenizer_test_util.hpp"

using namespace strata::data;
using namespace strata::data::test;

namespace {

// The message of the strata::Error that load_tokenizer(spec) throws.
std::string load_error(const std::string& spec) {
  try {
    load_tokenizer(spec);
  } catch (const strata::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error loading " << spec;
  return "";
}

// A tiny valid GPT-2-format vocabulary: the 256 byte tokens, "he" and "hel".
nlohmann::json tiny_vocab() {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[bytes_to_gpt2_chars(std::string(1, char(b)))] = b;
  v["he"] = 256;
  v["hel"] = 257;
  return v;
}

}  // namespace

TEST(TokenizerErrors, UnknownSpecListsTheKnownKinds) {
  const std::string e = load_error("nonsense");
  EXPECT_NE(e.find("'nonsense'"), std::string::npos) << e;
  EXPECT_NE(e.find("gpt2"), std::string::npos) << e;
}

TEST(TokenizerErrors, MissingFileIsNamed) {
  for (const std::string spec :
       {"/nonexistent/tokenizer.json", "/nonexistent/cl100k_base.tiktoken", "/nonexistent/x.model"}) {
    const std::string e = load_error(spec);
    EXPECT_NE(e.find(spec), std::string::npos) << e;
    EXPECT_NE(e.find("missing"), std::string::npos) << e;
  }
}

TEST(TokenizerErrors, BadJsonIsNamed) {
  TempDir dir;
  const auto path = (dir.path() / "tokenizer.json").string();
  write_text(path, "{\"model\": {\"vocab\": ");
  const std::string e = load_error(path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("bad JSON"), std::string::npos) << e;
}

TEST(TokenizerErrors, MergeNamingAnUnknownTokenGivesTheLineAndToken) {
  TempDir dir;
  write_text(dir.path() / "vocab.json", tiny_vocab().dump());
  write_text(dir.path() / "merges.txt", "#version: 0.2\nh e\nhe l\nhel zz\n");
  const std::string e = load_error(dir.path().string());
  EXPECT_NE(e.find("merges.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("merge 4"), std::string::npos) << e;  // line 4 of the file
  EXPECT_NE(e.find("unknown token 'zz'"), std::string::npos) << e;
}

TEST(TokenizerErrors, MergeMakingATokenOutsideTheVocabularyIsReported) {
  TempDir dir;
  write_text(dir.path() / "vocab.json", tiny_vocab().dump());
  write_text(dir.path() / "merges.txt", "#version: 0.2\nh e\nl o\n");
  const std::string e = load_error(dir.path().string());
  EXPECT_NE(e.find("'lo', which is not in the vocabulary"), std::string::npos) << e;
}

TEST(TokenizerErrors, TinyVocabularyEncodesWithItsMerges) {
  TempDir dir;
  write_text(dir.path() / "vocab.json", tiny_vocab().dump());
  write_text(dir.path() / "merges.txt", "#version: 0.2\nh e\nhe l\n");
  const auto t = load_tokenizer(dir.path().string());
  EXPECT_EQ(t->encode("help"), (std::vector<std::int32_t>{257, 'p'}));
  EXPECT_EQ(t->eos_id(), -1);
}

TEST(TokenizerErrors, NonByteLevelTokenizerJsonIsRejectedWithTheReason) {
  TempDir dir;
  const auto path = (dir.path() / "tokenizer.json").string();
  write_text(path, R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}})");
  EXPECT_NE(load_error(path).find("byte_fallback"), std::string::npos);
  write_text(path, R"({"model": {"type": "Unigram", "vocab": []}})");
  EXPECT_NE(load_error(path).find("Unigram"), std::string::npos);
}

TEST(TokenizerErrors, BadTiktokenLineGivesTheLineNumber) {
  TempDir dir;
  const auto path = (dir.path() / "r50k_base.tiktoken").string();
  write_text(path, "IQ== 0\nnot-a-line\n");
  const std::string e = load_error(path);
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  EXPECT_NE(e.find(path), std::string::npos) << e;
}

TEST(TokenizerErrors, VocabularyWithoutAllBytesIsRejected) {
  TempDir dir;
  write_text(dir.path() / "vocab.json", R"({"a": 0, "b": 1})");
  write_text(dir.path() / "merges.txt", "#version: 0.2\n");
  const std::string e = load_error(dir.path().string());
  EXPECT_NE(e.find("no token for the byte"), std::string::npos) << e;
}
