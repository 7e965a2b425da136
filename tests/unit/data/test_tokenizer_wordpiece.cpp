// WordPiece (BERT's bert-base-uncased vocab.txt, fetched by scripts/fetch-tokenizers.sh)
// against ids computed by an independent implementation: the committed fixture
// tests/fixtures/wordpiece_encoding.json, from @huggingface/tokenizers (JavaScript).
#include <gtest/gtest.h>

#include <thread>

#include "strata/data/wordpiece_tokenizer.hpp"
#include "tokenizer_test_util.hpp"

using namespace strata;
using namespace strata::data;
using namespace strata::data::test;

namespace {

const WordPieceTokenizer& bert() {
  static const std::unique_ptr<WordPieceTokenizer> t = WordPieceTokenizer::from_vocab_txt(
      (tokenizer_dir() / "bert-base-uncased" / "vocab.txt").string(), "bert-base-uncased");
  return *t;
}

}  // namespace

TEST(WordPieceTokenizer, VocabularyIsBertBaseUncasedWithItsSpecialIds) {
  const WordPieceTokenizer& t = bert();
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_TRUE(t.options().lowercase);  // no capital letters in the vocabulary: uncased
  EXPECT_TRUE(t.options().strip_accents);
  EXPECT_EQ(t.special_token_id("[PAD]"), 0);
  EXPECT_EQ(t.special_token_id("[UNK]"), 100);
  EXPECT_EQ(t.special_token_id("[CLS]"), 101);
  EXPECT_EQ(t.special_token_id("[SEP]"), 102);
  EXPECT_EQ(t.special_token_id("[MASK]"), 103);
  EXPECT_EQ(t.special_token_id("<mask>"), -1);
  EXPECT_EQ(t.eos_id(), 102);  // documents end in [SEP]
  EXPECT_EQ(t.encode("i like strawberries"), (std::vector<std::int32_t>{1045, 2066, 13137, 20968}));
}

TEST(WordPieceTokenizer, EncodesEveryFixtureStringLikeTheReferenceImplementation) {
  const auto fx = fixture("wordpiece_encoding.json");
  ASSERT_GE(fx["cases"].size(), 300u);
  int checked = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    const std::vector<std::int32_t> expected = c["ids"];
    EXPECT_EQ(bert().encode(text), expected) << "text: " << nlohmann::json(text).dump();
    ++checked;
  }
  EXPECT_EQ(checked, int(fx["cases"].size()));
}

TEST(WordPieceTokenizer, BasicTokeniserLowercasesStripsAccentsAndSplitsPunctuationAndCjk) {
  const WordPieceTokenizer& t = bert();
  EXPECT_EQ(t.basic_tokenize("Héllo, WORLD!"), (std::vector<std::string>{"hello", ",", "world", "!"}));
  EXPECT_EQ(t.basic_tokenize("你好世界"), (std::vector<std::string>{"你", "好", "世", "界"}));
  EXPECT_EQ(t.basic_tokenize("a\u200bb\tc\u00a0d\x01"
                             "e"),
            (std::vector<std::string>{"ab", "c", "de"}));
  EXPECT_EQ(t.basic_tokenize("ΟΔΥΣΣΕΥΣ"), (std::vector<std::string>{"οδυσσευς"}));  // final sigma
  EXPECT_EQ(t.basic_tokenize("  "), (std::vector<std::string>{}));
}

TEST(WordPieceTokenizer, LongestMatchFirstWithContinuationsAndUnknownWords) {
  const std::vector<std::string> vocab = {"[PAD]", "[UNK]",  "[CLS]", "[SEP]", "[MASK]", "un",
                                          "##aff", "##able", "##a",   "a",     "##b",    "b"};
  const WordPieceTokenizer t("toy", vocab, WordPieceTokenizer::Options{});
  EXPECT_EQ(t.encode("unaffable"), (std::vector<std::int32_t>{5, 6, 7}));
  EXPECT_EQ(t.decode(t.encode("unaffable")), "unaffable");
  EXPECT_EQ(t.encode("unaffablex"), (std::vector<std::int32_t>{1}));  // a remainder no entry prefixes
  EXPECT_EQ(t.encode("ab b"), (std::vector<std::int32_t>{9, 10, 11}));
  WordPieceTokenizer::Options short_words;
  short_words.max_input_chars_per_word = 3;
  const WordPieceTokenizer s("toy3", vocab, short_words);
  EXPECT_EQ(s.encode("abab"), (std::vector<std::int32_t>{1}));  // longer than 3 characters
  EXPECT_EQ(s.encode("aba"), (std::vector<std::int32_t>{9, 10, 8}));
}

TEST(WordPieceTokenizer, DecodeJoinsContinuationsAndRoundTripsLowercasedText) {
  const std::string text = "in the beginning god created the heaven and the earth . unaffable tokenization";
  EXPECT_EQ(bert().decode(bert().encode(text)), text);
}

TEST(WordPieceTokenizer, LoadsFromTokenizerJsonAndTheSpecAndRejectsBadFiles) {
  TempDir dir;
  // A tokenizer.json with a WordPiece model over the toy vocabulary, cased.
  nlohmann::json j;
  j["normalizer"] = {{"type", "BertNormalizer"},
                     {"lowercase", false},
                     {"strip_accents", nullptr},
                     {"clean_text", true},
                     {"handle_chinese_chars", true}};
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  j["model"] = {{"type", "WordPiece"},
                {"unk_token", "[UNK]"},
                {"continuing_subword_prefix", "##"},
                {"max_input_chars_per_word", 100},
                {"vocab", {{"[UNK]", 0}, {"[SEP]", 1}, {"A", 2}, {"a", 3}, {"##b", 4}}}};
  const auto path = dir.path() / "toy" / "tokenizer.json";
  std::filesystem::create_directories(path.parent_path());
  write_text(path, j.dump());
  const auto t = load_tokenizer(path.string());
  EXPECT_EQ(t->name(), "toy");
  EXPECT_EQ(t->encode("A ab"), (std::vector<std::int32_t>{2, 3, 4}));  // cased: A stays A
  EXPECT_EQ(t->eos_id(), 1);
  // The "bert-base-uncased" spec and a path to vocab.txt load the same tokenizer.
  const auto spec = load_tokenizer("bert-base-uncased");
  EXPECT_EQ(spec->name(), "bert-base-uncased");
  EXPECT_EQ(spec->content_hash(), bert().content_hash());
  EXPECT_EQ(load_tokenizer((tokenizer_dir() / "bert-base-uncased" / "vocab.txt").string())->content_hash(),
            bert().content_hash());
  // No [UNK]; a repeated entry; an unsupported normalizer.
  write_text(dir.path() / "nounk.txt", "[PAD]\nhello\n");
  EXPECT_THROW(load_tokenizer((dir.path() / "nounk.txt").string()), Error);
  write_text(dir.path() / "twice.txt", "[UNK]\nhello\nhello\n");
  try {
    load_tokenizer((dir.path() / "twice.txt").string());
    FAIL() << "a repeated entry was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("twice.txt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("appears twice"), std::string::npos) << e.what();
  }
  j["normalizer"] = {{"type", "NFKC"}};
  write_text(path, j.dump());
  EXPECT_THROW(load_tokenizer(path.string()), Error);
}

TEST(WordPieceTokenizer, TwoThreadsEncodingTheSameTextGetTheSameIds) {
  std::string text;
  // Held in a variable: a range-for over a member of the temporary fixture would dangle.
  const auto cases = fixture("wordpiece_encoding.json");
  for (const auto& c : cases["cases"]) text += c["text"].get<std::string>() + " ";
  const std::vector<std::int32_t> expected = bert().encode(text);
  std::vector<std::int32_t> a, b;
  std::thread ta([&] { a = bert().encode(text); }), tb([&] { b = bert().encode(text); });
  ta.join(), tb.join();
  EXPECT_EQ(a, expected);
  EXPECT_EQ(b, expected);
}
