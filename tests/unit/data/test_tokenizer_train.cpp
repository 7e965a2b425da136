// BPE training: train -> encode -> decode round trips, tokenizer.json save/load, determinism.
#include <gtest/gtest.h>

#include "strata/core/error.hpp"
#include "tokenizer_test_util.hpp"

using namespace strata::data;
using namespace strata::data::test;

namespace {

const BpeTokenizer& trained() {
  static const auto t = [] {
    const std::vector<std::string> corpus = {english_text(),
                                             read_text("/usr/share/common-licenses/Apache-2.0")};
    return train_bpe(corpus, 1000, {"<|endoftext|>", "<|pad|>"});
  }();
  return *t;
}

}  // namespace

TEST(BpeTraining, ReachesTheRequestedVocabularyWithSpecialsLast) {
  EXPECT_EQ(trained().vocab_size(), 1000);
  EXPECT_EQ(trained().eos_id(), 998);
  EXPECT_EQ(trained().decode(std::vector<std::int32_t>{999}), "<|pad|>");
  EXPECT_EQ(trained().merges().size(), 998u - 256u);  // the training text has no a+b collisions here
}

TEST(BpeTraining, TrainEncodeDecodeRoundTripsHeldOutText) {
  const std::string held_out =
      read_text("/usr/share/common-licenses/MPL-2.0") + "naïve 日本語 🙂 \xff\xfe";
  const auto ids = trained().encode(held_out);
  EXPECT_EQ(trained().decode(ids), held_out);
  // Learned merges compress English: well under one token per byte.
  EXPECT_LT(double(ids.size()) / double(held_out.size()), 0.4);
  for (auto id : ids) ASSERT_TRUE(id >= 0 && id < 998);
}

TEST(BpeTraining, FrequentWordsBecomeSingleTokens) {
  EXPECT_EQ(trained().encode(" the").size(), 1u);
  EXPECT_EQ(trained().encode(" License").size(), 1u);
}

TEST(BpeTraining, SavedTokenizerJsonLoadsWithTheSameIdsAndHash) {
  TempDir dir;
  const auto path = (dir.path() / "tokenizer.json").string();
  trained().save_tokenizer_json(path);
  const auto loaded = load_tokenizer(path);
  EXPECT_EQ(loaded->content_hash(), trained().content_hash());
  EXPECT_EQ(loaded->eos_id(), trained().eos_id());
  EXPECT_EQ(loaded->vocab_size(), trained().vocab_size());
  const std::string text = english_text().substr(0, 5000);
  EXPECT_EQ(loaded->encode(text), trained().encode(text));
  // The file is Hugging Face's format: model.vocab, model.merges as "a b", added_tokens.
  const auto j = nlohmann::json::parse(read_text(path));
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["merges"][0].get<std::string>().find(' ') != std::string::npos, true);
  EXPECT_EQ(j["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
}

TEST(BpeTraining, IsDeterministic) {
  const std::vector<std::string> corpus = {english_text().substr(0, 20000)};
  EXPECT_EQ(train_bpe(corpus, 400)->content_hash(), train_bpe(corpus, 400)->content_hash());
}

TEST(BpeTraining, StopsEarlyWhenNoPairRepeatsAndRejectsTooSmallVocabularies) {
  const std::vector<std::string> corpus = {"abab abab"};
  const auto t = train_bpe(corpus, 10000, {});
  EXPECT_LT(t->vocab_size(), 270);
  EXPECT_EQ(t->decode(t->encode("abab abab")), "abab abab");
  EXPECT_THROW(train_bpe(corpus, 256, {"<|endoftext|>"}), strata::Error);
}
