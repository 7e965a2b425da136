// Sample sources and the asynchronous loader (loader.hpp).
#include "strata/data/loader.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/core/log.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/corpus.hpp"
#include "strata/data/format.hpp"
#include "strata/data/sampler.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::data {

namespace {

// synthetic / text: the in-memory corpus and its GlobalSampler, as before the HDF5 path.
class CorpusSource final : public SampleSource {
 public:
  CorpusSource(TokenCorpus corpus, int seq_len, std::uint64_t seed, MaskToken mask)
      : corpus_(std::move(corpus)),
        sampler_(std::int64_t(corpus_.tokens().size()), seq_len + 1, seed),
        window_(seq_len + 1),
        mask_(std::move(mask)) {}
  void train_window(std::uint64_t sample, std::int32_t* window) override {
    const std::int64_t start = sampler_.window_start(sample);
    std::memcpy(window, corpus_.tokens().data() + start, std::size_t(window_) * sizeof(std::int32_t));
  }
  // The synthetic language has an endless held-out stream; a fixed list of this many windows.
  std::int64_t num_valid_windows() const override { return corpus_.has_heldout() ? kHeldoutWindows : 0; }
  void valid_window(std::int64_t index, std::int32_t* window) override {
    STRATA_CHECK(index >= 0 && index < num_valid_windows(), "validation window ", index, " out of range");
    corpus_.heldout_window(std::uint64_t(index), window_, window);
  }
  std::int64_t num_train_windows() const override { return sampler_.num_windows(); }
  std::string description() const override { return corpus_.description(); }
  MaskToken mask_token() const override { return mask_; }
  const TokenCorpus& corpus() const { return corpus_; }

 private:
  static constexpr std::int64_t kHeldoutWindows = 1 << 16;
  TokenCorpus corpus_;
  GlobalSampler sampler_;
  int window_;
  MaskToken mask_;
};

// The [MASK] id for a tokenizer with `vocab` ids (and maybe its own special token), checked
// against the model's vocabulary.
SampleSource::MaskToken resolve_mask_token(const Tokenizer* tokenizer, int vocab, const std::string& what,
                                           const config::ModelConfig& model) {
  SampleSource::MaskToken m;
  m.data_vocab = vocab;
  if (tokenizer)
    for (const char* name : {"[MASK]", "<mask>"})
      if (const std::int32_t id = tokenizer->special_token_id(name); id >= 0) {
        m.mask_id = id;
        m.origin = what + "'s special token " + name;
        break;
      }
  if (m.mask_id < 0) {
    m.mask_id = vocab;
    m.origin =
        what + " has no [MASK] token: id " + std::to_string(vocab) + " (its vocabulary size) is [MASK]";
  }
  if (m.mask_id >= model.vocab_size)
    throw make_error("masked LM: the [MASK] token gets id ", m.mask_id, " (", m.origin,
                     ") but model.vocab_size is ", model.vocab_size,
                     "; set model.vocab_size >= ", m.mask_id + 1);
  return m;
}

// hdf5: blended token datasets.
class Hdf5Source final : public SampleSource {
 public:
  Hdf5Source(const config::DataConfig& cfg, const config::ModelConfig& model, int seq_len, std::uint64_t seed,
             bool masked_lm)
      : window_(seq_len + 1), max_epochs_(cfg.max_epochs) {
    std::unique_ptr<Tokenizer> expected;
    if (!cfg.tokenizer.empty()) expected = load_tokenizer(cfg.tokenizer);
    std::vector<double> weights;
    for (std::size_t i = 0; i < cfg.datasets.size(); ++i) {
      const config::DatasetSpec& spec = cfg.datasets[i];
      TokenDataset ds(spec.path);
      const DatasetInfo& info = ds.info();
      if (expected) {
        if (info.tokenizer_hash != expected->content_hash() || info.tokenizer_name != expected->name())
          throw make_error(spec.path, ": tokenised with '", info.tokenizer_name, "' (hash ",
                           info.tokenizer_hash, ") but data.tokenizer is '", cfg.tokenizer, "' (",
                           expected->name(), ", hash ", expected->content_hash(),
                           "); prepare it again with --tokenizer ", cfg.tokenizer);
      } else if (i > 0 && (info.tokenizer_hash != datasets_[0].info().tokenizer_hash)) {
        throw make_error(spec.path, ": tokenised with '", info.tokenizer_name, "' (hash ",
                         info.tokenizer_hash, ") but ", datasets_[0].path(), " with '",
                         datasets_[0].info().tokenizer_name, "' (hash ", datasets_[0].info().tokenizer_hash,
                         "); every dataset must use the model's tokenizer");
      }
      if (info.vocab_size > model.vocab_size)
        throw make_error(spec.path, ": its tokenizer '", info.tokenizer_name, "' has a vocabulary of ",
                         info.vocab_size, " but model.vocab_size is ", model.vocab_size,
                         " (set model.vocab_size >= ", info.vocab_size, ")");
      const std::int64_t windows = std::int64_t(info.num_tokens / std::uint64_t(window_));
      if (windows < 1)
        throw make_error(spec.path, ": ", info.num_tokens, " tokens, fewer than one sample of ", window_,
                         " tokens (train.seq_len + 1)");
      samplers_.emplace_back(windows, cfg.valid_fraction, seed, int(i));
      if (cfg.curriculum != config::CurriculumOrder::none)
        samplers_.back().set_curriculum(window_difficulty(ds, cfg, i, windows), pacing_of(cfg, seq_len),
                                        cfg.curriculum_reverse);
      if (samplers_.back().num_train() < 1)
        throw make_error(spec.path, ": no training windows left after holding out data.valid_fraction = ",
                         cfg.valid_fraction);
      for (std::int64_t v = 0; v < samplers_.back().num_valid(); ++v)
        valid_.push_back({int(i), samplers_.back().valid_window(v)});
      datasets_.push_back(std::move(ds));
      weights.push_back(spec.weight);
    }
    if (cfg.schedule.empty()) {
      blend_ = std::make_unique<BlendSchedule>(weights);
    } else {
      // Tokens -> global samples (train.seq_len tokens of loss each).
      std::vector<std::pair<std::uint64_t, std::vector<double>>> points;
      for (const config::MixturePoint& p : cfg.schedule) {
        STRATA_CHECK(p.weights.size() == datasets_.size(), "data.schedule: a point has ", p.weights.size(),
                     " weights for ", datasets_.size(), " datasets");
        points.emplace_back(p.tokens / std::uint64_t(seq_len), p.weights);
      }
      for (std::size_t k = 1; k < points.size(); ++k)
        STRATA_CHECK(points[k].first > points[k - 1].first, "data.schedule: points ", k - 1, " and ", k,
                     " fall in the same sample (", points[k].first, ") at train.seq_len ", seq_len);
      blend_ = std::make_unique<BlendSchedule>(std::move(points));
    }
    curriculum_ = cfg.curriculum;
    vocab_limit_ = model.vocab_size;
    if (masked_lm) {
      // The datasets' own tokenizer when data.tokenizer is not given and its name is one
      // load_tokenizer knows; else only its vocabulary size is known.
      std::unique_ptr<Tokenizer> own;
      if (!expected) {
        try {
          own = load_tokenizer(datasets_[0].info().tokenizer_name);
          if (own->content_hash() != datasets_[0].info().tokenizer_hash) own.reset();
        } catch (const std::exception&) {
          own.reset();
        }
      }
      const Tokenizer* tok = expected ? expected.get() : own.get();
      int vocab = 0;
      for (const auto& ds : datasets_) vocab = std::max(vocab, int(ds.info().vocab_size));
      if (tok) vocab = tok->vocab_size();
      mask_ = resolve_mask_token(tok, vocab, "tokenizer '" + datasets_[0].info().tokenizer_name + "'", model);
      // BERT's [CLS] opens every masked-LM sample when the tokenizer has one (WordPiece).
      if (tok) mask_.cls_id = tok->special_token_id("[CLS]");
    }
    max_epoch_seen_.assign(datasets_.size(), 0);
  }

  void train_window(std::uint64_t sample, std::int32_t* window) override {
    const BlendSchedule::Pick p = blend_->pick(sample);
    std::uint64_t epoch = 0;
    const std::int64_t w = samplers_[std::size_t(p.dataset)].train_window(p.index, sample, &epoch);
    read_window(p.dataset, w, window);
    if (epoch + 1 > max_epoch_seen_[std::size_t(p.dataset)]) {
      max_epoch_seen_[std::size_t(p.dataset)] = epoch + 1;
      if (max_epochs_ > 0 && epoch + 1 > std::uint64_t(max_epochs_))
        log_warn("data: ", datasets_[std::size_t(p.dataset)].path(), " enters epoch ", epoch + 1,
                 " at global sample ", sample, ", beyond data.max_epochs = ", max_epochs_,
                 " (its windows repeat)");
    }
  }
  std::int64_t num_valid_windows() const override { return std::int64_t(valid_.size()); }
  MaskToken mask_token() const override { return mask_; }
  void valid_window(std::int64_t index, std::int32_t* window) override {
    const auto& v = valid_[std::size_t(index)];
    read_window(v.first, v.second, window);
  }
  std::int64_t num_train_windows() const override {
    std::int64_t n = 0;
    for (const auto& s : samplers_) n += s.num_train();
    return n;
  }
  std::string description() const override {
    std::ostringstream os;
    os << datasets_.size() << " HDF5 dataset(s), tokenizer " << datasets_[0].info().tokenizer_name << ":";
    const auto& per = blend_->per_block();
    std::uint64_t total = 0;
    for (auto c : per) total += c;
    for (std::size_t i = 0; i < datasets_.size(); ++i)
      os << "\n  " << datasets_[i].path() << ": " << datasets_[i].num_documents() << " docs, "
         << datasets_[i].num_tokens() << " tokens, " << samplers_[i].num_train() << " train + "
         << samplers_[i].num_valid() << " valid windows, weight " << double(per[i]) / double(total);
    if (blend_->scheduled()) os << "\n  mixture schedule (data.schedule): weights change over training";
    if (curriculum_ != config::CurriculumOrder::none)
      os << "\n  curriculum: windows from easy to hard by " << config::to_string(curriculum_);
    return os.str();
  }
  std::string epoch_plan(std::uint64_t total_samples) const override {
    std::ostringstream os;
    for (std::size_t i = 0; i < datasets_.size(); ++i) {
      const double epochs =
          double(blend_->count_before(int(i), total_samples)) / double(samplers_[i].num_train());
      os << (i ? "\n" : "") << "data: " << datasets_[i].path() << " will be read " << epochs << " epochs";
      if (max_epochs_ > 0 && epochs > max_epochs_)
        os << " -- WARNING: more than data.max_epochs = " << max_epochs_ << ", its windows will repeat";
    }
    return os.str();
  }
  std::vector<std::pair<std::string, std::uint64_t>> consumed_per_dataset(std::uint64_t n) const override {
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (std::size_t i = 0; i < datasets_.size(); ++i)
      out.emplace_back(datasets_[i].path(), blend_->count_before(int(i), n));
    return out;
  }
  std::string tokenizer_hash() const override { return datasets_[0].info().tokenizer_hash; }

 private:
  void read_window(int d, std::int64_t w, std::int32_t* window) {
    const TokenDataset& ds = datasets_[std::size_t(d)];
    ds.read(std::uint64_t(w) * std::uint64_t(window_), std::uint64_t(window_), window);
    for (int t = 0; t < window_; ++t)
      if (window[t] < 0 || window[t] >= vocab_limit_)
        throw make_error(ds.path(), ": token id ", window[t], " at position ",
                         std::uint64_t(w) * std::uint64_t(window_) + std::uint64_t(t),
                         " is outside the vocabulary (", vocab_limit_, ")");
    if (mask_.cls_id >= 0) {  // masked LM with [CLS]: it opens the sample, the window's tokens follow
      std::memmove(window + 1, window, std::size_t(window_ - 1) * sizeof(std::int32_t));
      window[0] = mask_.cls_id;
    }
  }

  static Pacing pacing_of(const config::DataConfig& cfg, int seq_len) {
    Pacing p;
    p.kind = cfg.curriculum_pacing == config::CurriculumPacing::linear ? Pacing::Kind::linear
             : cfg.curriculum_pacing == config::CurriculumPacing::step ? Pacing::Kind::step
                                                                       : Pacing::Kind::root;
    p.start = cfg.curriculum_start;
    p.samples = cfg.curriculum_tokens / std::uint64_t(seq_len);
    p.stages = cfg.curriculum_stages;
    return p;
  }

  // The difficulty of every window of `ds`: the token-weighted mean difficulty of the documents
  // it covers. A document's difficulty: its length in tokens (length), 1 - its quality score
  // (quality, /doc_scores), or the number on its line of the dataset's score file (scores).
  std::vector<double> window_difficulty(const TokenDataset& ds, const config::DataConfig& cfg, std::size_t i,
                                        std::int64_t windows) const {
    const std::vector<std::uint64_t>& off = ds.doc_offsets();
    const std::size_t docs = off.size() - 1;
    std::vector<double> doc(docs);
    switch (cfg.curriculum) {
      case config::CurriculumOrder::length:
        for (std::size_t k = 0; k < docs; ++k) doc[k] = double(off[k + 1] - off[k]);
        break;
      case config::CurriculumOrder::quality: {
        if (!ds.has_doc_scores())
          throw make_error(ds.path(),
                           ": data.curriculum is quality but the dataset has no /doc_scores (prepare it "
                           "with --quality-model)");
        const std::vector<float> q = ds.read_doc_scores();
        for (std::size_t k = 0; k < docs; ++k) doc[k] = 1.0 - double(q[k]);
        break;
      }
      case config::CurriculumOrder::scores: {
        const std::string& path = cfg.curriculum_scores.at(i);
        std::ifstream in(path);
        if (!in)
          throw make_error("cannot open curriculum score file '", path, "' (data.curriculum_scores[", i,
                           "])");
        std::string line;
        std::size_t k = 0, line_no = 0;
        while (std::getline(in, line)) {
          ++line_no;
          if (line.empty() || line[0] == '#') continue;
          char* end = nullptr;
          const double v = std::strtod(line.c_str(), &end);
          if (end == line.c_str() || !std::isfinite(v))
            throw make_error(path, ":", line_no, ": expected a number (one difficulty per document), got '",
                             line, "'");
          if (k >= docs) throw make_error(path, ": more scores than the ", docs, " documents of ", ds.path());
          doc[k++] = v;
        }
        if (k != docs) throw make_error(path, ": ", k, " scores for the ", docs, " documents of ", ds.path());
        break;
      }
      case config::CurriculumOrder::none: break;
    }
    std::vector<double> out(std::size_t(windows), 0.0);
    std::size_t k = 0;
    for (std::int64_t w = 0; w < windows; ++w) {
      const std::uint64_t b = std::uint64_t(w) * std::uint64_t(window_), e = b + std::uint64_t(window_);
      while (k < docs && off[k + 1] <= b) ++k;
      double sum = 0;
      for (std::size_t j = k; j < docs && off[j] < e; ++j)
        sum += doc[j] * double(std::min(e, off[j + 1]) - std::max(b, off[j]));
      out[std::size_t(w)] = sum / double(window_);
    }
    return out;
  }

  int window_;
  int max_epochs_;
  int vocab_limit_ = 0;
  std::vector<TokenDataset> datasets_;
  std::vector<DatasetSampler> samplers_;
  std::unique_ptr<BlendSchedule> blend_;
  config::CurriculumOrder curriculum_ = config::CurriculumOrder::none;
  std::vector<std::pair<int, std::int64_t>> valid_;  // (dataset, window)
  std::vector<std::uint64_t> max_epoch_seen_;
  MaskToken mask_;
};

}  // namespace

std::unique_ptr<SampleSource> make_sample_source(const config::DataConfig& data,
                                                 const config::ModelConfig& model, int seq_len,
                                                 std::uint64_t seed, bool masked_lm) {
  if (data.source == config::DataSource::hdf5)
    return std::make_unique<Hdf5Source>(data, model, seq_len, seed, masked_lm);
  const bool synthetic = data.source == config::DataSource::synthetic;
  // Masked LM on synthetic data: the language leaves the last id free for [MASK].
  const int language = synthetic && masked_lm ? model.vocab_size - 1 : model.vocab_size;
  TokenCorpus corpus =
      synthetic
          // Enough tokens for a few thousand distinct windows; the stream repeats in epochs after that.
          ? TokenCorpus::synthetic(language, std::max<std::int64_t>(1 << 20, 4096LL * (seq_len + 1)), seed)
          : TokenCorpus::from_text_files(data.paths);
  STRATA_CHECK(corpus.vocab_needed() <= model.vocab_size, "data: ", corpus.description(),
               " needs a vocabulary of ", corpus.vocab_needed(), " but model.vocab_size is ",
               model.vocab_size);
  SampleSource::MaskToken mask;
  if (masked_lm)
    mask = resolve_mask_token(nullptr, corpus.vocab_needed(),
                              synthetic ? "the synthetic language" : "byte-level text", model);
  return std::make_unique<CorpusSource>(std::move(corpus), seq_len, seed, std::move(mask));
}

// ---- AsyncLoader ----------------------------------------------------------------------------------

AsyncLoader::AsyncLoader(SampleSource& source, const LoaderOptions& options)
    : source_(source), opt_(options) {
  STRATA_CHECK(opt_.prefetch >= 1, "data.prefetch must be >= 1, got ", opt_.prefetch);
  const int local = opt_.global_batch_size / opt_.dp_size;
  STRATA_CHECK(opt_.global_batch_size % opt_.dp_size == 0 && local % opt_.micro_batch_size == 0,
               "global batch ", opt_.global_batch_size, " must split into dp ", opt_.dp_size,
               " x micro-batches of ", opt_.micro_batch_size);
  accum_ = local / opt_.micro_batch_size;
  slot_elems_ = std::size_t(opt_.micro_batch_size) * std::size_t(opt_.seq_len);
  buffers_.resize(std::size_t(opt_.prefetch) * 2 * slot_elems_);
  window_.resize(std::size_t(opt_.seq_len) + 1);
  thread_ = std::thread([this] { run(); });
}

AsyncLoader::~AsyncLoader() { stop(); }

void AsyncLoader::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AsyncLoader::run() {
  const std::uint64_t P = std::uint64_t(opt_.prefetch);
  const int T = opt_.seq_len;
  try {
    for (std::uint64_t i = 0;; ++i) {
      {
        // Slot i % P is free once the consumer has moved past micro-batch i - P.
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || i < consumed_ - (holding_ ? 1 : 0) + P; });
        if (stop_) return;
      }
      const SampleSpan span =
          micro_batch_span(opt_.first_batch + i / std::uint64_t(accum_), opt_.global_batch_size, opt_.dp_size,
                           opt_.dp_rank, opt_.micro_batch_size, int(i % std::uint64_t(accum_)));
      std::int32_t* inputs = buffers_.data() + (i % P) * 2 * slot_elems_;
      std::int32_t* targets = inputs + slot_elems_;
      for (int b = 0; b < span.count; ++b) {
        const std::uint64_t sample = span.first + std::uint64_t(b);
        source_.train_window(sample, window_.data());
        std::int32_t* in = inputs + std::size_t(b) * std::size_t(T);
        std::int32_t* tg = targets + std::size_t(b) * std::size_t(T);
        if (opt_.masker) {
          opt_.masker->apply(sample, window_.data(), T, in, tg);
        } else {
          std::memcpy(in, window_.data(), std::size_t(T) * sizeof(std::int32_t));
          std::memcpy(tg, window_.data() + 1, std::size_t(T) * sizeof(std::int32_t));
        }
      }
      {
        std::lock_guard lock(mu_);
        produced_ = i + 1;
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    error_ = std::current_exception();
    cv_.notify_all();
  }
}

AsyncLoader::Batch AsyncLoader::next() {
  const Timer wait;
  std::unique_lock lock(mu_);
  holding_ = false;  // the previous batch's slot is free again
  cv_.notify_all();
  cv_.wait(lock, [&] { return produced_ > consumed_ || error_; });
  if (produced_ <= consumed_ && error_) std::rethrow_exception(error_);
  wait_ms_ += wait.ms();
  const std::uint64_t i = consumed_++;
  holding_ = true;
  const std::int32_t* inputs = buffers_.data() + (i % std::uint64_t(opt_.prefetch)) * 2 * slot_elems_;
  return {inputs, inputs + slot_elems_};
}

double AsyncLoader::take_wait_ms() {
  std::lock_guard lock(mu_);
  return std::exchange(wait_ms_, 0.0);
}

}  // namespace strata::data
