// SentencePiece .model files through libsentencepiece: a small BPE model trained here with
// the library's own trainer (LLaMA-2's model has the same format).
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <thread>

#include "tokenizer_test_util.hpp"

using namespace strata::data;
using namespace strata::data::test;

TEST(SentencePieceTokenizer, LoadsAModelAndRoundTripsText) {
  TempDir dir;
  const auto input = dir.path() / "corpus.txt";
  write_text(input, english_text());
  const auto prefix = (dir.path() / "sp").string();
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + input.string() + " --model_prefix=" + prefix +
      " --vocab_size=500 --model_type=bpe --byte_fallback=true --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();

  const auto t = load_tokenizer(prefix + ".model");
  EXPECT_EQ(t->name(), "sp");
  EXPECT_EQ(t->vocab_size(), 500);
  EXPECT_EQ(t->eos_id(), 2);  // SentencePiece's default: <unk>=0, <s>=1, </s>=2
  EXPECT_EQ(t->content_hash().size(), 16u);
  const std::string text = "This License applies to any program. Unicode: naïve 日本";
  const auto ids = t->encode(text);
  EXPECT_LT(ids.size(), text.size());
  EXPECT_EQ(t->decode(ids), text);

  std::vector<std::int32_t> a, b;
  std::thread ta([&] { a = t->encode(english_text()); });
  std::thread tb([&] { b = t->encode(english_text()); });
  ta.join();
  tb.join();
  EXPECT_EQ(a, b);
}

TEST(SentencePieceTokenizer, AFileThatIsNotAModelIsAnErrorNamingIt) {
  TempDir dir;
  const auto path = (dir.path() / "broken.model").string();
  write_text(path, "not a protobuf");
  try {
    load_tokenizer(path);
    FAIL() << "expected an error";
  } catch (const strata::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}
