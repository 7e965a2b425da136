// A learned quality filter: a logistic-regression classifier on hashed word n-grams that tells
// curated text (books, documentation, an encyclopedia) from the text to be filtered, after
// GPT-3 (Brown et al. 2020, appendix A: a logistic-regression classifier on hashed features,
// WebText + books + Wikipedia as positives against raw Common Crawl) and the small
// classifiers of FineWeb-Edu and DCLM.
//
// Features (the hashing trick, Weinberger et al. 2009, sec. 2): the document's words
// (lower-cased runs of ASCII letters and digits and any non-ASCII bytes) and word bigrams up
// to max_ngram; each distinct n-gram f adds sign(f) / sqrt(#distinct n-grams) to weight
// bucket hash(f) mod 2^hash_bits (the sign hash makes collisions cancel in expectation).
// score(text) = sigmoid(w . x + b) = P(curated | text).
//
// Training: AdaGrad (Duchi et al. 2011) on the class-balanced logistic loss with an L2
// penalty, a fixed number of epochs over a permutation keyed by (seed, epoch): the model is a
// pure function of the two corpora and the options. A held-out share of the documents
// (chosen by a hash of the document text, so a document and its word-shuffled copy fall on
// the same side) gives accuracy at 0.5 and the ROC AUC (Mann-Whitney: the probability that a
// random positive scores above a random negative).
//
// Keeping documents in `strata prepare` (prepare.hpp): a threshold (score >= t), or GPT-3's
// Pareto sampling, keep when X > 1 - score with X ~ Pareto(alpha) (numpy's pareto, i.e.
// Lomax: X = U^(-1/alpha) - 1, alpha = 9 in GPT-3), U drawn from a hash of the text and the
// seed, so the decision is a pure function of the document: the same on any number of ranks.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

struct QualityTrainOptions {
  int hash_bits = 18;  // 2^18 weights (1 MiB of float32)
  int max_ngram = 2;   // words and word bigrams
  int epochs = 5;
  double learning_rate = 0.5;  // AdaGrad's step
  double l2 = 1e-6;            // per-example L2 penalty
  double holdout = 0.1;        // share of documents held out for the report
  std::uint64_t seed = 1;
};

struct QualityReport {
  std::uint64_t train_positive = 0, train_negative = 0, held_positive = 0, held_negative = 0;
  double train_accuracy = 0, held_accuracy = 0, held_auc = 0;
  std::string to_json() const;
};

// ROC AUC of scores against labels (1 = positive); ties count one half. 0.5 when a class is empty.
double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> labels);

class QualityModel {
 public:
  // `holdout_key[i]` (optional, one per document of positive then negative) overrides the text
  // hash that picks the held-out documents (a shuffled copy takes its source's key).
  static QualityModel train(std::span<const std::string> positive, std::span<const std::string> negative,
                            const QualityTrainOptions& options, QualityReport* report = nullptr,
                            std::span<const std::uint64_t> holdout_key = {});
  // A model file written by save(); throws strata::Error naming the file and the problem.
  static QualityModel load(const std::string& path);
  // Writes the model; `about` (JSON text: corpora, report) is stored in the header.
  void save(const std::string& path, const std::string& about = "{}") const;

  double score(std::string_view text) const;  // P(curated), in (0, 1)
  int hash_bits() const { return bits_; }
  int max_ngram() const { return max_ngram_; }
  const std::string& content_hash() const { return hash_; }  // hex digest of the weights and features
  const std::string& about() const { return about_; }

 private:
  void finish();  // computes hash_
  int bits_ = 18, max_ngram_ = 2;
  float bias_ = 0;
  std::vector<float> weights_;
  std::string about_ = "{}", hash_;
};

// A document's features: (bucket, +-1 / sqrt(n)) pairs, as the model sees them.
struct QualityFeature {
  std::uint32_t bucket;
  float value;
};
void quality_features(std::string_view text, int hash_bits, int max_ngram, std::vector<QualityFeature>& out);

// GPT-3's Pareto rule for one document (see above): keep when Lomax(alpha) > 1 - score, the
// uniform draw keyed by (text, seed).
bool pareto_keep(double score, double alpha, std::string_view text, std::uint64_t seed);

// The words of `text` in a fixed random order keyed by (seed, index): a negative example with
// the vocabulary of curated text and none of its word order ("shuffled-word" text).
std::string shuffle_words(std::string_view text, std::uint64_t seed, std::uint64_t index);

}  // namespace strata::data
