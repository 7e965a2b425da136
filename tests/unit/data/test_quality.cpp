// The learned quality classifier (quality.hpp) and its use in prepare: it separates two kinds
// of text on held-out documents, is a pure function of its inputs, survives a save/load, and
// prepare keeps, drops and records scores exactly as the rule says.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/data/format.hpp"
#include "strata/data/prepare.hpp"
#include "strata/data/quality.hpp"

using namespace strata;
using namespace strata::data;
using testing_util::paragraph;
using testing_util::write_file;

namespace {

// Curated: the test paragraphs. Other: the same words shuffled (no word order).
void corpora(int n, std::vector<std::string>& pos, std::vector<std::string>& neg) {
  for (int i = 0; i < n; ++i) {
    pos.push_back(paragraph(i, 60));
    neg.push_back(shuffle_words(paragraph(1000 + i, 60), 3, std::uint64_t(i)));
  }
}

}  // namespace

TEST(QualityClassifier, RocAucMatchesHandComputedValues) {
  const std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f};
  const std::vector<std::uint8_t> l = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(roc_auc(s, l), 0.75);  // pairs (pos > neg): 0.35>0.1, 0.8>0.1, 0.8>0.4 of 4
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.5f, 0.5f}, std::vector<std::uint8_t>{0, 1}), 0.5);  // a tie
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.9f, 0.1f}, std::vector<std::uint8_t>{0, 1}), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(std::vector<float>{0.9f}, std::vector<std::uint8_t>{1}), 0.5);  // one class only
}

TEST(QualityClassifier, SeparatesOrderedFromShuffledTextOnHeldOutDocumentsAndIsDeterministic) {
  std::vector<std::string> pos, neg;
  corpora(400, pos, neg);
  QualityTrainOptions o;
  o.hash_bits = 16;
  o.holdout = 0.2;
  QualityReport r;
  const QualityModel m = QualityModel::train(pos, neg, o, &r);
  EXPECT_GT(r.held_positive + r.held_negative, 100u);
  EXPECT_GT(r.held_auc, 0.95) << r.to_json();
  EXPECT_GT(r.held_accuracy, 0.85) << r.to_json();
  EXPECT_GT(m.score(paragraph(5000, 60)), 0.5);
  EXPECT_LT(m.score(shuffle_words(paragraph(5001, 60), 9, 1)), 0.5);
  // A pure function of the corpora and options.
  EXPECT_EQ(QualityModel::train(pos, neg, o).content_hash(), m.content_hash());
  o.seed = 2;
  EXPECT_NE(QualityModel::train(pos, neg, o).content_hash(), m.content_hash());
}

TEST(QualityClassifier, SaveLoadRoundTripsAndBadFilesAreNamed) {
  const std::string dir = testing_util::temp_folder();
  std::vector<std::string> pos, neg;
  corpora(60, pos, neg);
  QualityTrainOptions o;
  o.hash_bits = 10;
  const QualityModel m = QualityModel::train(pos, neg, o);
  m.save(dir + "/q.bin", R"({"note": "test"})");
  const QualityModel back = QualityModel::load(dir + "/q.bin");
  EXPECT_EQ(back.content_hash(), m.content_hash());
  EXPECT_EQ(back.score(pos[3]), m.score(pos[3]));
  EXPECT_NE(back.about().find("test"), std::string::npos);
  // Truncated weights, a foreign file, a missing file: errors that name the file.
  const auto size = std::filesystem::file_size(dir + "/q.bin");
  std::filesystem::copy_file(dir + "/q.bin", dir + "/cut.bin");
  std::filesystem::resize_file(dir + "/cut.bin", size - 100);
  write_file(dir + "/foreign.bin", "hello, not a model");
  for (const char* bad : {"/cut.bin", "/foreign.bin", "/missing.bin"}) {
    try {
      QualityModel::load(dir + bad);
      FAIL() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad + 1), std::string::npos) << e.what();
    }
  }
}

TEST(QualityClassifier, ParetoRuleKeepsByScoreAsGpt3AndIsAPureFunctionOfTheText) {
  // P(keep | score s) = P(U^(-1/a) - 1 > 1 - s) = (2 - s)^(-a).
  for (const double s : {0.0, 0.5, 0.9}) {
    int kept = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) kept += pareto_keep(s, 9, "document " + std::to_string(i), 7);
    EXPECT_NEAR(double(kept) / n, std::pow(2 - s, -9.0), 0.01) << "score " << s;
  }
  EXPECT_EQ(pareto_keep(0.3, 9, "same text", 1), pareto_keep(0.3, 9, "same text", 1));
  EXPECT_TRUE(pareto_keep(1.0, 9, "any", 1));
}

TEST(QualityClassifier, PrepareDropsLowScoresCountsThemAndRecordsDocScores) {
  const std::string dir = testing_util::temp_folder();
  std::vector<std::string> pos, neg;
  corpora(300, pos, neg);
  QualityTrainOptions o;
  o.hash_bits = 14;
  const QualityModel m = QualityModel::train(pos, neg, o);
  m.save(dir + "/q.bin");
  std::string in;
  std::vector<std::string> texts;
  for (int i = 0; i < 30; ++i) {
    texts.push_back(i % 3 == 0 ? shuffle_words(paragraph(2000 + i, 60), 11, std::uint64_t(i))
                               : paragraph(3000 + i, 60));
    in += nlohmann::json({{"text", texts.back()}}).dump() + "\n";
  }
  write_file(dir + "/in.jsonl", in);
  PrepareOptions p;
  p.inputs = {dir + "/in.jsonl"};
  p.output = dir + "/out.h5";
  p.quiet = true;
  p.progress_interval_s = 0;
  p.near_dedup = false;
  p.filters.min_words = 10;
  p.quality_model = dir + "/q.bin";
  p.quality_threshold = 0.5;
  const PrepareStats st = run_prepare(p, testing_util::one_rank());
  std::vector<float> expected;
  std::uint64_t removed = 0;
  for (const auto& t : texts) {
    const double s = m.score(t);
    if (s >= 0.5)
      expected.push_back(float(s));
    else
      ++removed;
  }
  EXPECT_GE(removed, 8u);  // most of the 10 shuffled documents
  EXPECT_EQ(st.quality_docs, removed);
  EXPECT_EQ(st.documents_written, expected.size());
  const TokenDataset ds(p.output);
  ASSERT_TRUE(ds.has_doc_scores());
  EXPECT_EQ(ds.read_doc_scores(), expected);
  EXPECT_NE(ds.info().statistics.find("\"quality.docs\":" + std::to_string(removed)), std::string::npos);
  // Without a model there is no /doc_scores.
  p.quality_model.clear();
  p.output = dir + "/plain.h5";
  run_prepare(p, testing_util::one_rank());
  EXPECT_FALSE(TokenDataset(p.output).has_doc_scores());
  EXPECT_THROW(TokenDataset(p.output).read_doc_scores(), Error);
}
