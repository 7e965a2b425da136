// `strata quality train`: fit the learned quality classifier (data/quality.hpp) on two
// corpora and report its held-out accuracy and AUC; `strata quality score`: the score
// distribution of a corpus under a model (what --quality-threshold would keep).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/prepare.hpp"
#include "strata/data/quality.hpp"

namespace strata::cli {

namespace {

struct CorpusArgs {
  std::string format = "auto", split = "file", text_field = "text";
  data::PrepareOptions options() const {
    data::PrepareOptions o;
    o.format = format == "text"    ? data::InputFormat::text
               : format == "jsonl" ? data::InputFormat::jsonl
                                   : data::InputFormat::auto_detect;
    o.doc_split = split == "blank-line" ? data::DocSplit::blank_line : data::DocSplit::file;
    o.text_field = text_field;
    return o;
  }
  void add(CLI::App* cmd) {
    cmd->add_option("--format", format, "Input format: auto (by extension), text, jsonl")
        ->check(CLI::IsMember({"auto", "text", "jsonl"}))
        ->capture_default_str();
    cmd->add_option("--doc-split", split,
                    "Plain text: one document per file, or per blank-line-separated block")
        ->check(CLI::IsMember({"file", "blank-line"}))
        ->capture_default_str();
    cmd->add_option("--text-field", text_field, "JSONL: the field holding the text")->capture_default_str();
  }
};

}  // namespace

Action add_quality_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("quality", "Learned quality classifier: train one, or score a corpus with one");
  cmd->require_subcommand(1);

  // ---- train ----
  auto* train = cmd->add_subcommand(
      "train", "Fit a hashed n-gram logistic regression: curated (positive) vs other text");
  auto positive = std::make_shared<std::vector<std::string>>();
  auto negative = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto report_path = std::make_shared<std::string>();
  auto shuffled = std::make_shared<bool>(false);
  auto max_docs = std::make_shared<std::size_t>(0);
  auto min_chars = std::make_shared<std::size_t>(0);
  auto topt = std::make_shared<data::QualityTrainOptions>();
  auto train_corpus = std::make_shared<CorpusArgs>();
  train
      ->add_option("--positive", *positive,
                   "Curated text: files or folders (plain text, JSONL; .gz accepted)")
      ->required()
      ->expected(1, -1);
  train->add_option("--negative", *negative, "Text to tell apart: files or folders")->expected(1, -1);
  train->add_flag("--shuffled-negatives", *shuffled,
                  "Also use every positive document with its words shuffled as a negative");
  train->add_option("-o,--out", *out, "The model file to write, e.g. q.bin")->required();
  train->add_option("--hash-bits", topt->hash_bits, "log2 of the number of hashed features")
      ->check(CLI::Range(8, 26))
      ->capture_default_str();
  train->add_option("--ngram", topt->max_ngram, "Longest word n-gram")
      ->check(CLI::Range(1, 4))
      ->capture_default_str();
  train->add_option("--epochs", topt->epochs, "Passes over the training documents")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  train->add_option("--lr", topt->learning_rate, "AdaGrad step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--l2", topt->l2, "L2 penalty per example")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  train->add_option("--holdout", topt->holdout, "Share of documents held out for accuracy and AUC")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  train->add_option("--seed", topt->seed, "Training order and word shuffles")->capture_default_str();
  train->add_option("--max-docs", *max_docs, "Use at most this many documents of each corpus (0: all)")
      ->capture_default_str();
  train->add_option("--min-chars", *min_chars, "Skip documents shorter than this (bytes)")
      ->capture_default_str();
  train->add_option("--report", *report_path, "Also write the held-out report as JSON to this file");
  train_corpus->add(train);

  // ---- score ----
  auto* score =
      cmd->add_subcommand("score", "Score documents with a model: the distribution, and the share kept");
  auto model_path = std::make_shared<std::string>();
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto threshold = std::make_shared<double>(0.5);
  auto score_corpus = std::make_shared<CorpusArgs>();
  score->add_option("-m,--model", *model_path, "A model from `strata quality train`")->required();
  score->add_option("-i,--input", *inputs, "Files or folders")->required()->expected(1, -1);
  score->add_option("--threshold", *threshold, "Report the share with score >= this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  score_corpus->add(score);

  return [=] {
    if (train->parsed()) {
      STRATA_CHECK(!negative->empty() || *shuffled,
                   "strata quality train: give --negative FILES, --shuffled-negatives, or both");
      const Timer clock;
      const data::PrepareOptions ro = train_corpus->options();
      auto load = [&](const std::vector<std::string>& in) {
        std::vector<std::string> docs = data::read_corpus(in, ro, *max_docs);
        std::erase_if(docs, [&](const std::string& d) { return d.size() < *min_chars; });
        return docs;
      };
      const std::vector<std::string> pos = load(*positive);
      std::vector<std::string> neg = negative->empty() ? std::vector<std::string>{} : load(*negative);
      std::vector<std::uint64_t> keys;
      for (const auto& d : pos) keys.push_back(data::hash64(d));
      for (const auto& d : neg) keys.push_back(data::hash64(d));
      if (*shuffled)
        for (std::size_t i = 0; i < pos.size(); ++i) {
          neg.push_back(data::shuffle_words(pos[i], topt->seed, i));
          keys.push_back(keys[i]);  // held out together with its source
        }
      data::QualityReport rep;
      const data::QualityModel model = data::QualityModel::train(pos, neg, *topt, &rep, keys);
      nlohmann::ordered_json about;
      about["positive"] = *positive;
      about["negative"] = *negative;
      about["shuffled_negatives"] = *shuffled;
      about["report"] = nlohmann::json::parse(rep.to_json());
      model.save(*out, about.dump());
      std::printf("quality train: %zu positive, %zu negative documents (%llu + %llu held out), %.1f s\n",
                  pos.size(), neg.size(), static_cast<unsigned long long>(rep.held_positive),
                  static_cast<unsigned long long>(rep.held_negative), clock.seconds());
      std::printf("  training accuracy %.4f; held-out accuracy %.4f, AUC %.4f\n", rep.train_accuracy,
                  rep.held_accuracy, rep.held_auc);
      std::printf("  model: %s (2^%d features, n-grams up to %d, hash %s)\n", out->c_str(), model.hash_bits(),
                  model.max_ngram(), model.content_hash().c_str());
      if (!report_path->empty()) {
        std::ofstream r(*report_path);
        if (!r) throw make_error("cannot write report '", *report_path, "'");
        r << rep.to_json() << '\n';
      }
      return 0;
    }
    const data::QualityModel model = data::QualityModel::load(*model_path);
    const std::vector<std::string> docs = data::read_corpus(*inputs, score_corpus->options(), 0);
    STRATA_CHECK(!docs.empty(), "strata quality score: no documents in the input");
    std::vector<double> s;
    s.reserve(docs.size());
    std::size_t kept = 0;
    std::uint64_t kept_chars = 0, chars = 0;
    for (const auto& d : docs) {
      s.push_back(model.score(d));
      chars += d.size();
      if (s.back() >= *threshold) ++kept, kept_chars += d.size();
    }
    std::vector<double> sorted = s;
    std::sort(sorted.begin(), sorted.end());
    auto q = [&](double p) {
      return sorted[std::min(sorted.size() - 1, std::size_t(p * double(sorted.size())))];
    };
    double mean = 0;
    for (double v : s) mean += v / double(s.size());
    std::printf("quality score: %zu documents, mean %.4f, quantiles 10%% %.4f, 50%% %.4f, 90%% %.4f\n",
                s.size(), mean, q(0.1), q(0.5), q(0.9));
    std::printf("  score >= %.3f: %zu documents (%.2f%%), %.2f%% of the bytes\n", *threshold, kept,
                100.0 * double(kept) / double(s.size()),
                chars ? 100.0 * double(kept_chars) / double(chars) : 0.0);
    return 0;
  };
}

}  // namespace strata::cli
