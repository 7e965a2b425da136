// The hashed n-gram logistic-regression quality classifier (quality.hpp).
#include "strata/data/quality.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/hash.hpp"

namespace strata::data {

namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'Q', 'U', 'A', 'L', '1'};

bool is_word_byte(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }

std::uint64_t combine(std::uint64_t a, std::uint64_t b) { return mix64(a * 0x9E3779B97F4A7C15ull + b); }

// FNV-1a over the lower-cased word, finalised: words hash alike on every platform.
std::uint64_t word_hash(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = p[i] < 0x80 && p[i] >= 'A' && p[i] <= 'Z' ? p[i] | 0x20 : p[i];
    h = (h ^ c) * 0x100000001b3ull;
  }
  return mix64(h);
}

// The held-out split: a fixed share of keys, independent of the training seed.
bool held_out(std::uint64_t key, double share) {
  return double(mix64(key ^ 0x686f6c646f7574ull) >> 11) * 0x1.0p-53 < share;
}

}  // namespace

void quality_features(std::string_view text, int hash_bits, int max_ngram, std::vector<QualityFeature>& out) {
  out.clear();
  thread_local std::vector<std::uint64_t> grams;
  grams.clear();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::uint64_t prev[4] = {0, 0, 0, 0};  // the last max_ngram - 1 word hashes
  std::size_t words = 0;
  for (std::size_t i = 0; i < n;) {
    while (i < n && !is_word_byte(s[i])) ++i;
    const std::size_t start = i;
    while (i < n && is_word_byte(s[i])) ++i;
    if (i == start) break;
    const std::uint64_t w = word_hash(s + start, i - start);
    grams.push_back(combine(1, w));
    std::uint64_t g = w;
    for (int k = 2; k <= max_ngram && std::size_t(k) <= words + 1; ++k) {
      g = combine(prev[k - 2], g);
      grams.push_back(combine(std::uint64_t(k), g));
    }
    for (int k = std::min(max_ngram, 4) - 2; k > 0; --k) prev[k] = prev[k - 1];
    prev[0] = w;
    ++words;
  }
  std::sort(grams.begin(), grams.end());
  grams.erase(std::unique(grams.begin(), grams.end()), grams.end());
  if (grams.empty()) return;
  const float norm = float(1.0 / std::sqrt(double(grams.size())));
  const std::uint64_t mask = (std::uint64_t(1) << hash_bits) - 1;
  out.reserve(grams.size());
  for (const std::uint64_t g : grams) {
    const std::uint64_t h = mix64(g ^ 0x9a7e5ull);
    out.push_back({std::uint32_t(h & mask), (h >> 63) ? -norm : norm});
  }
}

double roc_auc(std::span<const float> scores, std::span<const std::uint8_t> labels) {
  STRATA_CHECK(scores.size() == labels.size(), "roc_auc: ", scores.size(), " scores for ", labels.size(),
               " labels");
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U from the ranks of the positives (average ranks over ties).
  double rank_sum = 0;
  std::uint64_t pos = 0, neg = 0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = 0.5 * double(i + 1 + j);  // ranks i+1 .. j
    for (std::size_t k = i; k < j; ++k) {
      if (labels[order[k]])
        rank_sum += avg_rank, ++pos;
      else
        ++neg;
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - double(pos) * double(pos + 1) / 2) / (double(pos) * double(neg));
}

std::string QualityReport::to_json() const {
  nlohmann::ordered_json j;
  j["train_positive"] = train_positive;
  j["train_negative"] = train_negative;
  j["held_positive"] = held_positive;
  j["held_negative"] = held_negative;
  j["train_accuracy"] = train_accuracy;
  j["held_accuracy"] = held_accuracy;
  j["held_auc"] = held_auc;
  return j.dump();
}

QualityModel QualityModel::train(std::span<const std::string> positive, std::span<const std::string> negative,
                                 const QualityTrainOptions& o, QualityReport* report,
                                 std::span<const std::uint64_t> holdout_key) {
  STRATA_CHECK(o.hash_bits >= 8 && o.hash_bits <= 26, "quality: hash_bits must be in [8, 26], got ",
               o.hash_bits);
  STRATA_CHECK(o.max_ngram >= 1 && o.max_ngram <= 4, "quality: max_ngram must be in [1, 4], got ",
               o.max_ngram);
  STRATA_CHECK(o.epochs >= 1, "quality: epochs must be >= 1, got ", o.epochs);
  STRATA_CHECK(o.holdout >= 0 && o.holdout < 1, "quality: the held-out share must be in [0, 1), got ",
               o.holdout);
  STRATA_CHECK(!positive.empty() && !negative.empty(),
               "quality: training needs positive and negative documents (got ", positive.size(),
               " positive, ", negative.size(), " negative)");
  const std::size_t N = positive.size() + negative.size();
  STRATA_CHECK(holdout_key.empty() || holdout_key.size() == N, "quality: ", holdout_key.size(),
               " held-out keys for ", N, " documents");
  // Features of every document, once (CSR).
  std::vector<std::size_t> row(N + 1, 0);
  std::vector<QualityFeature> feats, one;
  std::vector<std::uint8_t> label(N), held(N);
  for (std::size_t i = 0; i < N; ++i) {
    const std::string& text = i < positive.size() ? positive[i] : negative[i - positive.size()];
    quality_features(text, o.hash_bits, o.max_ngram, one);
    feats.insert(feats.end(), one.begin(), one.end());
    row[i + 1] = feats.size();
    label[i] = i < positive.size();
    held[i] = held_out(holdout_key.empty() ? hash64(text) : holdout_key[i], o.holdout);
  }
  std::vector<std::size_t> train_idx, held_idx;
  std::uint64_t tp = 0, tn = 0;
  for (std::size_t i = 0; i < N; ++i) {
    (held[i] ? held_idx : train_idx).push_back(i);
    if (!held[i]) (label[i] ? tp : tn) += 1;
  }
  STRATA_CHECK(tp > 0 && tn > 0, "quality: no ", tp == 0 ? "positive" : "negative",
               " document is left for training after holding out ", o.holdout);
  // Class-balanced weights: each class carries half of the loss.
  const double wp = double(tp + tn) / (2.0 * double(tp)), wn = double(tp + tn) / (2.0 * double(tn));

  QualityModel m;
  m.bits_ = o.hash_bits;
  m.max_ngram_ = o.max_ngram;
  m.weights_.assign(std::size_t(1) << o.hash_bits, 0.0f);
  std::vector<float> g2(m.weights_.size(), 0.0f);
  double bias = 0, bias_g2 = 0;
  const core::CounterRng rng(o.seed, "data.quality.order");
  std::vector<std::size_t> order = train_idx;
  auto margin = [&](std::size_t i) {
    double z = bias;
    for (std::size_t k = row[i]; k < row[i + 1]; ++k)
      z += double(m.weights_[feats[k].bucket]) * feats[k].value;
    return z;
  };
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    // Fisher-Yates keyed by (seed, epoch).
    for (std::size_t i = order.size(); i > 1; --i) {
      const std::size_t j = std::size_t(rng.below(i, std::uint64_t(epoch) << 40 | i));
      std::swap(order[i - 1], order[j]);
    }
    for (const std::size_t i : order) {
      const double y = label[i], cw = label[i] ? wp : wn;
      const double g = cw * (sigmoid(margin(i)) - y);  // d loss / d z
      for (std::size_t k = row[i]; k < row[i + 1]; ++k) {
        const std::uint32_t b = feats[k].bucket;
        const double gk = g * feats[k].value + o.l2 * m.weights_[b];
        g2[b] += float(gk * gk);
        m.weights_[b] -= float(o.learning_rate * gk / (std::sqrt(double(g2[b])) + 1e-8));
      }
      bias_g2 += g * g;
      bias -= o.learning_rate * g / (std::sqrt(bias_g2) + 1e-8);
    }
  }
  m.bias_ = float(bias);
  m.finish();
  if (report) {
    auto evaluate = [&](const std::vector<std::size_t>& idx, double& acc, double* auc) {
      std::vector<float> s;
      std::vector<std::uint8_t> l;
      std::size_t right = 0;
      for (const std::size_t i : idx) {
        const double p = sigmoid(double(m.bias_) + (margin(i) - bias));
        s.push_back(float(p));
        l.push_back(label[i]);
        right += (p >= 0.5) == bool(label[i]);
      }
      acc = idx.empty() ? 0 : double(right) / double(idx.size());
      if (auc) *auc = roc_auc(s, l);
    };
    *report = QualityReport{};
    report->train_positive = tp, report->train_negative = tn;
    for (const std::size_t i : held_idx) (label[i] ? report->held_positive : report->held_negative) += 1;
    evaluate(train_idx, report->train_accuracy, nullptr);
    evaluate(held_idx, report->held_accuracy, &report->held_auc);
  }
  return m;
}

double QualityModel::score(std::string_view text) const {
  thread_local std::vector<QualityFeature> f;
  quality_features(text, bits_, max_ngram_, f);
  double z = bias_;
  for (const QualityFeature& q : f) z += double(weights_[q.bucket]) * q.value;
  return sigmoid(z);
}

void QualityModel::finish() {
  Hasher128 h(0x51);
  const std::int32_t header[2] = {bits_, max_ngram_};
  h.update(header, sizeof header);
  h.update(&bias_, sizeof bias_);
  h.update(weights_.data(), weights_.size() * sizeof(float));
  hash_ = h.finish().hex();
}

void QualityModel::save(const std::string& path, const std::string& about) const {
  nlohmann::ordered_json header;
  header["format"] = "strata quality model, version 1";
  header["hash_bits"] = bits_;
  header["max_ngram"] = max_ngram_;
  header["bias"] = bias_;
  header["content_hash"] = hash_;
  header["about"] = nlohmann::json::parse(about, nullptr, false).is_discarded()
                        ? nlohmann::json(about)
                        : nlohmann::json::parse(about);
  const std::string text = header.dump();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw make_error("cannot write quality model '", path, "'");
    const std::uint64_t len = text.size();
    out.write(kMagic, sizeof kMagic);
    out.write(reinterpret_cast<const char*>(&len), sizeof len);  // little-endian hosts (x86-64, aarch64)
    out.write(text.data(), std::streamsize(text.size()));
    out.write(reinterpret_cast<const char*>(weights_.data()),
              std::streamsize(weights_.size() * sizeof(float)));
    if (!out) throw make_error("cannot write quality model '", path, "' (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw make_error("cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

QualityModel QualityModel::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw make_error("cannot open quality model '", path, "'");
  char magic[8] = {};
  std::uint64_t len = 0;
  in.read(magic, sizeof magic);
  in.read(reinterpret_cast<char*>(&len), sizeof len);
  if (!in || std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    throw make_error(path, ": not a strata quality model (written by `strata quality train`)");
  if (len > (1u << 26)) throw make_error(path, ": corrupt quality model header (", len, " bytes)");
  std::string text(len, '\0');
  in.read(text.data(), std::streamsize(len));
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  if (!in || header.is_discarded() || !header.is_object())
    throw make_error(path, ": corrupt quality model header (truncated?)");
  QualityModel m;
  try {
    m.bits_ = header.at("hash_bits").get<int>();
    m.max_ngram_ = header.at("max_ngram").get<int>();
    m.bias_ = header.at("bias").get<float>();
  } catch (const nlohmann::json::exception& e) {
    throw make_error(path, ": quality model header: ", e.what());
  }
  if (m.bits_ < 8 || m.bits_ > 26 || m.max_ngram_ < 1 || m.max_ngram_ > 4)
    throw make_error(path, ": quality model has hash_bits ", m.bits_, ", max_ngram ", m.max_ngram_,
                     " (out of range)");
  m.weights_.resize(std::size_t(1) << m.bits_);
  in.read(reinterpret_cast<char*>(m.weights_.data()), std::streamsize(m.weights_.size() * sizeof(float)));
  if (!in)
    throw make_error(path, ": quality model weights are truncated (expected ", m.weights_.size(), " floats)");
  if (in.peek() != std::char_traits<char>::eof())
    throw make_error(path, ": trailing bytes after the quality model weights");
  for (float w : m.weights_)
    if (!std::isfinite(w)) throw make_error(path, ": quality model has a non-finite weight");
  if (header.contains("about")) m.about_ = header["about"].dump();
  m.finish();
  if (header.contains("content_hash") && header["content_hash"] != m.hash_)
    throw make_error(path, ": quality model weights do not match their recorded hash (corrupt file)");
  return m;
}

bool pareto_keep(double score, double alpha, std::string_view text, std::uint64_t seed) {
  STRATA_CHECK(alpha > 0, "quality: the Pareto shape must be > 0, got ", alpha);
  const double u = (double(mix64(hash64(text) ^ mix64(seed ^ 0x706172)) >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  const double lomax = std::pow(u, -1.0 / alpha) - 1.0;
  return lomax > 1.0 - score;
}

std::string shuffle_words(std::string_view text, std::uint64_t seed, std::uint64_t index) {
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < text.size();) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) ++i;
    const std::size_t start = i;
    while (i < text.size() && !(text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  const core::CounterRng rng(seed ^ (index * 0x9E3779B97F4A7C15ull), "data.quality.shuffle");
  for (std::size_t i = words.size(); i > 1; --i) std::swap(words[i - 1], words[std::size_t(rng.below(i, i))]);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) out.push_back(i % 12 == 0 ? '\n' : ' ');
    out.append(words[i]);
  }
  return out;
}

}  // namespace strata::data
