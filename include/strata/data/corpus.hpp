// In-memory token corpora and the global sampler (DESIGN.md invariant 3).
//
// A corpus is one token stream. Training samples are windows of seq_len + 1 tokens (inputs
// are the first seq_len, targets the last seq_len), packed across document boundaries.
// The global sampler defines sample s of the run as a pure function of (seed, s): epoch
// e = s / W picks a permutation of the W windows keyed by (seed, e), so the order does not
// depend on the number of ranks, and a resumed run continues the same stream.
//
// Sources here: `synthetic` (a random bigram language: each token has 4 possible
// successors, so a model can learn it down to ln 4 ≈ 1.386 nats) and `text` (files read as
// bytes, a byte-level vocabulary of 256). HDF5 token datasets plug in behind the same
// interface with the data pipeline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::data {

class TokenCorpus {
 public:
  static TokenCorpus synthetic(int vocab_size, std::int64_t num_tokens, std::uint64_t seed);
  static TokenCorpus from_text_files(const std::vector<std::string>& paths);

  const std::vector<std::int32_t>& tokens() const { return tokens_; }
  int vocab_needed() const { return vocab_needed_; }  // largest token id + 1
  const std::string& description() const { return description_; }

  // Synthetic corpora only: held-out window `index` of `len` tokens, a fresh walk of the same
  // bigram language (its own RNG stream, started at a random token): never a copy of the
  // training stream, and a pure function of (seed, index).
  bool has_heldout() const { return !next_.empty(); }
  void heldout_window(std::uint64_t index, int len, std::int32_t* out) const;

 private:
  std::vector<std::int32_t> tokens_;
  std::vector<std::int32_t> next_;  // synthetic: the successor table, 4 per token
  std::uint64_t seed_ = 0;
  int vocab_needed_ = 0;
  std::string description_;
};

class GlobalSampler {
 public:
  // Non-overlapping windows of `window` tokens over a stream of `num_tokens`.
  GlobalSampler(std::int64_t num_tokens, std::int64_t window, std::uint64_t seed);
  std::int64_t num_windows() const { return num_windows_; }
  // Start offset (in tokens) of global sample `sample`. Reuses one permutation buffer,
  // rebuilt in place when the epoch changes: no allocation after construction.
  std::int64_t window_start(std::uint64_t sample);
  std::uint64_t epoch_of(std::uint64_t sample) const { return sample / std::uint64_t(num_windows_); }

 private:
  void build_permutation(std::uint64_t epoch);
  std::int64_t window_, num_windows_;
  std::uint64_t seed_;
  std::uint64_t current_epoch_ = ~0ull;
  std::vector<std::int64_t> permutation_;
};

// Fill `count` samples starting at global sample `first` into inputs/targets, each
// [count, seq_len] row-major.
void fill_batch(const TokenCorpus& corpus, GlobalSampler& sampler, std::uint64_t first, int count,
                int seq_len, std::int32_t* inputs, std::int32_t* targets);

}  // namespace strata::data
