#include "strata/data/corpus.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"

namespace strata::data {

TokenCorpus TokenCorpus::synthetic(int vocab_size, std::int64_t num_tokens, std::uint64_t seed) {
  STRATA_CHECK(vocab_size >= 2, "synthetic data needs a vocabulary of at least 2, got ", vocab_size);
  constexpr int kSuccessors = 4;
  const core::CounterRng table_rng(seed, "data.synthetic.table");
  const core::CounterRng walk_rng(seed, "data.synthetic.walk");
  std::vector<std::int32_t> next(std::size_t(vocab_size) * kSuccessors);
  for (std::size_t i = 0; i < next.size(); ++i)
    next[i] = std::int32_t(table_rng.below(std::uint64_t(vocab_size), i));
  TokenCorpus c;
  c.tokens_.resize(std::size_t(num_tokens));
  std::int32_t t = 0;
  for (std::int64_t i = 0; i < num_tokens; ++i) {
    c.tokens_[std::size_t(i)] = t;
    t = next[std::size_t(t) * kSuccessors + walk_rng.below(kSuccessors, std::uint64_t(i))];
  }
  c.vocab_needed_ = vocab_size;
  c.next_ = std::move(next);
  c.seed_ = seed;
  c.description_ = "synthetic bigram language (vocab " + std::to_string(vocab_size) + ", " +
                   std::to_string(num_tokens) + " tokens, entropy ln 4 = 1.386 nats/token)";
  return c;
}

void TokenCorpus::heldout_window(std::uint64_t index, int len, std::int32_t* out) const {
  STRATA_CHECK(has_heldout(), "only the synthetic corpus has held-out windows");
  constexpr int kSuccessors = 4;
  const core::CounterRng rng(seed_, "data.synthetic.heldout");
  const std::uint64_t vocab = next_.size() / kSuccessors;
  std::int32_t t = std::int32_t(rng.below(vocab, index, 0));
  for (int i = 0; i < len; ++i) {
    out[i] = t;
    t = next_[std::size_t(t) * kSuccessors + rng.below(kSuccessors, index, std::uint32_t(i) + 1)];
  }
}

TokenCorpus TokenCorpus::from_text_files(const std::vector<std::string>& paths) {
  STRATA_CHECK(!paths.empty(), "data.paths: expected at least one text file");
  TokenCorpus c;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw make_error("cannot open data file '", path, "': ", std::strerror(errno));
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char ch : bytes) c.tokens_.push_back(std::int32_t(static_cast<unsigned char>(ch)));
  }
  c.vocab_needed_ = 256;
  c.description_ = "byte-level text, " + std::to_string(paths.size()) + " file(s), " +
                   std::to_string(c.tokens_.size()) + " bytes";
  return c;
}

GlobalSampler::GlobalSampler(std::int64_t num_tokens, std::int64_t window, std::uint64_t seed)
    : window_(window), num_windows_(num_tokens / window), seed_(seed) {
  STRATA_CHECK(num_windows_ >= 1, "the corpus has ", num_tokens, " tokens, fewer than one sample of ", window,
               " tokens (train.seq_len + 1)");
  permutation_.resize(std::size_t(num_windows_));
}

void GlobalSampler::build_permutation(std::uint64_t epoch) {
  // Fisher-Yates with the counter RNG keyed by (seed, epoch): a pure function of both.
  const core::CounterRng rng(seed_ ^ (epoch * 0x9E3779B97F4A7C15ull), "data.sampler");
  for (std::int64_t i = 0; i < num_windows_; ++i) permutation_[std::size_t(i)] = i;
  for (std::int64_t i = num_windows_ - 1; i > 0; --i) {
    const auto j = std::int64_t(rng.below(std::uint64_t(i + 1), std::uint64_t(i)));
    std::swap(permutation_[std::size_t(i)], permutation_[std::size_t(j)]);
  }
  current_epoch_ = epoch;
}

std::int64_t GlobalSampler::window_start(std::uint64_t sample) {
  const std::uint64_t epoch = epoch_of(sample);
  if (epoch != current_epoch_) build_permutation(epoch);
  return permutation_[std::size_t(sample % std::uint64_t(num_windows_))] * window_;
}

void fill_batch(const TokenCorpus& corpus, GlobalSampler& sampler, std::uint64_t first, int count,
                int seq_len, std::int32_t* inputs, std::int32_t* targets) {
  const std::int32_t* tok = corpus.tokens().data();
  for (int b = 0; b < count; ++b) {
    const std::int64_t start = sampler.window_start(first + std::uint64_t(b));
    const std::int32_t* w = tok + start;
    for (int t = 0; t < seq_len; ++t) {
      inputs[std::size_t(b) * seq_len + t] = w[t];
      targets[std::size_t(b) * seq_len + t] = w[t + 1];
    }
  }
}

}  // namespace strata::data
