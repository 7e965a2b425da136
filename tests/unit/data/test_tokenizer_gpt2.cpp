// GPT-2 byte-level BPE against ids computed by an independent encoder (the committed fixture
// tests/fixtures/gpt2_encoding.json, from the JavaScript gpt-3-encoder), plus round trips,
// thread safety, the file formats GPT-2 ships in, and the content hash.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "strata/data/bpe_tokenizer.hpp"
#include "tokenizer_test_util.hpp"

using namespace strata::data;
using namespace strata::data::test;

TEST(Gpt2Tokenizer, HelloWorldIsTheKnownIds) {
  EXPECT_EQ(gpt2().encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eos_id(), 50256);
  EXPECT_EQ(gpt2().name(), "gpt2");
}

TEST(Gpt2Tokenizer, EncodesEveryFixtureStringLikeTheReferenceEncoder) {
  const auto fx = fixture("gpt2_encoding.json");
  ASSERT_GE(fx["cases"].size(), 300u);
  int failures = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    const auto expected = c["ids"].get<std::vector<std::int32_t>>();
    const auto got = gpt2().encode(text);
    if (got != expected && ++failures <= 5) ADD_FAILURE() << "text: " << nlohmann::json(text).dump();
  }
  EXPECT_EQ(failures, 0);
}

TEST(Gpt2Tokenizer, DecodeInvertsEncodeOnFixtureAndRandomBytes) {
  // The fixture is held here: a temporary's ["cases"] in the range-for would dangle.
  const nlohmann::json cases = fixture("gpt2_encoding.json")["cases"];
  for (const auto& c : cases) {
    const std::string text = c["text"];
    ASSERT_EQ(gpt2().decode(gpt2().encode(text)), text);
  }
  std::mt19937 rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    std::string bytes(rng() % 200, '\0');
    for (char& b : bytes) b = char(rng());
    ASSERT_EQ(gpt2().decode(gpt2().encode(bytes)), bytes);  // invalid UTF-8 too
  }
}

TEST(Gpt2Tokenizer, LongPieceMergeLoopAgreesWithShortPieceLoop) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::string piece(1 + rng() % 200, 'a');
    for (char& c : piece) c = "aabbcdeeefrst .,"[rng() % 16];
    std::vector<std::int32_t> small, heap;
    gpt2().encode_piece(piece, small, false);
    gpt2().encode_piece(piece, heap, true);
    ASSERT_EQ(small, heap) << piece;
  }
}

TEST(Gpt2Tokenizer, TwoThreadsEncodingTheSameTextGetTheSameIds) {
  std::string text;
  // The fixture is held here: a temporary's ["cases"] in the range-for would dangle.
  const nlohmann::json cases = fixture("gpt2_encoding.json")["cases"];
  for (const auto& c : cases) text += c["text"].get<std::string>() + " ";
  text += english_text();
  const auto expected = gpt2().encode(text);
  std::vector<std::int32_t> a, b;
  std::thread ta([&] {
    for (int i = 0; i < 3; ++i) a = gpt2().encode(text);
  });
  std::thread tb([&] {
    for (int i = 0; i < 3; ++i) b = gpt2().encode(text);
  });
  ta.join();
  tb.join();
  EXPECT_EQ(a, expected);
  EXPECT_EQ(b, expected);
}

TEST(Gpt2Tokenizer, LoadsFromVocabJsonAndMergesTxtAndFromAFolder) {
  TempDir dir;
  std::filesystem::copy_file(tokenizer_dir() / "gpt2" / "encoder.json", dir.path() / "vocab.json");
  std::filesystem::copy_file(tokenizer_dir() / "gpt2" / "vocab.bpe", dir.path() / "merges.txt");
  const auto t = load_tokenizer(dir.path().string());
  EXPECT_EQ(t->encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
  EXPECT_EQ(t->content_hash(), gpt2().content_hash());
  EXPECT_EQ(load_tokenizer("gpt2")->content_hash(), gpt2().content_hash());
}

TEST(Gpt2Tokenizer, SavedTokenizerJsonReloadsWithSameIdsAndHash) {
  TempDir dir;
  const auto path = (dir.path() / "tokenizer.json").string();
  gpt2().save_tokenizer_json(path);
  const auto t = load_tokenizer(path);
  EXPECT_EQ(t->content_hash(), gpt2().content_hash());
  EXPECT_EQ(t->eos_id(), 50256);
  EXPECT_EQ(t->vocab_size(), 50257);
  const std::string text = "Tokenizers: it's 2024, naïve café — 日本語 🙂\n\n  done";
  EXPECT_EQ(t->encode(text), gpt2().encode(text));
}

TEST(Gpt2Tokenizer, TokenizerJsonMergesMayBePairsInsteadOfStrings) {
  TempDir dir;
  const auto path = dir.path() / "tokenizer.json";
  gpt2().save_tokenizer_json(path.string());
  auto j = nlohmann::json::parse(read_text(path));
  for (auto& m : j["model"]["merges"]) {
    const std::string s = m;
    m = nlohmann::json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  const auto pairs_path = dir.path() / "pairs" / "tokenizer.json";
  std::filesystem::create_directories(pairs_path.parent_path());
  write_text(pairs_path, j.dump());
  const auto t = load_tokenizer(pairs_path.string());
  EXPECT_EQ(t->content_hash(), gpt2().content_hash());
  EXPECT_EQ(t->name(), "pairs");  // a file named tokenizer.json takes its folder's name
  EXPECT_EQ(t->encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
}

TEST(Gpt2Tokenizer, ContentHashIsStableHexAndDiffersBetweenVocabularies) {
  const std::string h = gpt2().content_hash();
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(h, load_tokenizer("bytes")->content_hash());
  EXPECT_NE(h, load_tokenizer("cl100k_base")->content_hash());
}

TEST(Gpt2Tokenizer, SpecialTokenTextIsEncodedAsTextAndEosDecodesToIt) {
  const auto ids = gpt2().encode("<|endoftext|>");
  EXPECT_GT(ids.size(), 1u);  // specials are appended by callers, never parsed from text
  EXPECT_EQ(gpt2().decode(std::vector<std::int32_t>{50256}), "<|endoftext|>");
  EXPECT_EQ(gpt2().decode(std::vector<std::int32_t>{15496, 50300, -1, 995}),
            "Hello world");  // padding ids skipped
}
