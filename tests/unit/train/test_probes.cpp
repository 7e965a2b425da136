// Cloze probe files: parsing with errors that name the line, the shipped demo probe file, and
// the scoring glue (prompt and " choice" tokenised separately, one space between).
#include <gtest/gtest.h>

#include <string>

#include "strata/data/tokenizer.hpp"
#include "strata/model/scoring.hpp"
#include "strata/model/transformer.hpp"
#include "strata/train/probes.hpp"

using namespace strata;

namespace {

std::string error_of(const std::string& text) {
  try {
    train::parse_probes(text, "p.jsonl");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Probes, ParsesObjectsSkipsBlankAndCommentLines) {
  const auto p = train::parse_probes(
      "# facts\n\n{\"prompt\": \"a b\", \"answer\": \"c\", \"choices\": [\"d\", \"c\"]}\n"
      "{\"prompt\": \"x\", \"answer\": \"y\", \"choices\": [\"y\", \"z\", \"w\"]}\n",
      "p.jsonl");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].line, 3);
  EXPECT_EQ(p[0].answer_index, 1);
  EXPECT_EQ(p[1].choices.size(), 3u);
  EXPECT_EQ(p[1].line, 4);
}

TEST(Probes, ErrorsNameTheLineAndTheField) {
  const std::string ok = "{\"prompt\": \"a\", \"answer\": \"b\", \"choices\": [\"b\", \"c\"]}\n";
  EXPECT_NE(error_of(ok + "{\"prompt\": \"a\", \"answer\": \n").find("p.jsonl:2: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of(ok + ok + "{\"answer\": \"b\", \"choices\": [\"b\", \"c\"]}\n")
                .find("p.jsonl:3: \"prompt\" must be a string"),
            std::string::npos);
  EXPECT_NE(error_of("{\"prompt\": \"a\", \"answer\": \"x\", \"choices\": [\"b\", \"c\"]}")
                .find("p.jsonl:1: the answer \"x\" is not one of the choices"),
            std::string::npos);
  EXPECT_NE(error_of("{\"prompt\": \"a\", \"answer\": \"b\", \"choices\": [\"b\"]}").find("at least two"),
            std::string::npos);
  EXPECT_NE(error_of("{\"prompt\": \"a\", \"answer\": \"b\", \"choices\": [\"b\", \"c\"], \"hint\": 1}")
                .find("unknown key \"hint\""),
            std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of("\n# nothing\n").find("no probes"), std::string::npos);
  EXPECT_THROW(train::load_probes("/nonexistent/probes.jsonl"), std::runtime_error);
}

TEST(Probes, ShippedDemoFileParsesWithAnswersAmongFourChoices) {
  const auto p = train::load_probes(std::string(STRATA_SOURCE_DIR) + "/data/probes/demo_probes.jsonl");
  EXPECT_GE(p.size(), 20u);
  for (const auto& probe : p) EXPECT_EQ(probe.choices.size(), 4u) << "line " << probe.line;
}

TEST(Probes, ContinuationGetsOneSpaceUnlessThePromptEndsInWhitespace) {
  EXPECT_EQ(train::continuation_text("created the", "heaven"), " heaven");
  EXPECT_EQ(train::continuation_text("created the ", "heaven"), "heaven");
  EXPECT_EQ(train::continuation_text("line\n", "x"), "x");
  EXPECT_EQ(train::continuation_text("", "x"), "x");
}

// score_probes = choice_log_likelihoods on the byte encodings of the prompt and " choice".
TEST(Probes, ScoresEachChoiceAsTheLogLikelihoodOfItsContinuation) {
  config::ModelConfig cfg;
  cfg.vocab_size = 257;
  cfg.max_seq_len = 32;
  cfg.init_std = 0.5;
  model::Transformer<double> init(cfg, 1, 1);
  init.init_parameters(3);
  model::CpuDecoder<double> dec(cfg);
  std::copy(init.params().begin(), init.params().end(), dec.params().begin());
  const data::ByteTokenizer byte_tokenizer;
  const data::Tokenizer& bytes = byte_tokenizer;
  const auto probes = train::parse_probes(
      "{\"prompt\": \"the sky is\", \"answer\": \"blue\", \"choices\": [\"green\", \"blue\", \"red\"]}",
      "p.jsonl");
  const train::ProbeReport r = train::score_probes(dec, bytes, probes, "p.jsonl");
  ASSERT_EQ(r.scores.size(), 1u);
  const std::vector<std::vector<std::int32_t>> choices = {bytes.encode(" green"), bytes.encode(" blue"),
                                                          bytes.encode(" red")};
  const auto want = model::choice_log_likelihoods(dec, bytes.encode("the sky is"), choices);
  for (std::size_t c = 0; c < 3; ++c) EXPECT_DOUBLE_EQ(r.scores[0].log_likelihood[c], want[c]);
  EXPECT_EQ(r.scores[0].predicted, model::best_choice(want));
  EXPECT_EQ(r.correct, r.scores[0].predicted == 1 ? 1 : 0);
  // A probe longer than the model's context is an error naming its line.
  const auto long_probe = train::parse_probes(
      "\n{\"prompt\": \"" + std::string(40, 'a') + "\", \"answer\": \"b\", \"choices\": [\"b\", \"c\"]}",
      "p.jsonl");
  try {
    train::score_probes(dec, bytes, long_probe, "p.jsonl");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("p.jsonl:2:"), std::string::npos) << e.what();
  }
}
