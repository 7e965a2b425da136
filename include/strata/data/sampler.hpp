// Blending and the global sampler for HDF5 datasets (DESIGN.md invariant 3).
//
// Global sample s (s = 0, 1, 2, ... over the whole run) is a pure function of (seed, s):
//   1. BlendSchedule picks the dataset: samples come in blocks of M; each block holds exactly
//      c_d = round(M w_d) samples of dataset d (largest-remainder rounding), interleaved by the
//      greedy "most behind its target" rule (Megatron-LM's blending indices), so every prefix
//      of the stream is within a few samples of the weights. Sample s is the k-th of dataset d,
//      k = (s / M) c_d + (rank of s mod M among the block's d-samples): O(1), no state.
//   2. DatasetSampler maps k to a window: epoch e = k / W_train, then a Fisher-Yates
//      permutation of the training windows keyed by (seed, dataset index, e).
// A window is seq_len + 1 consecutive tokens, windows do not overlap and are packed across
// document boundaries (EOS separates documents). A fixed hash of the window index (not the
// seed) puts a fraction of windows in the held-out validation split.
//
// Data-parallel ranks take slices: DP rank r of d gets [r B_local, (r+1) B_local) of each
// global batch of B = d B_local samples, so the stream does not depend on d.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::data {

class BlendSchedule {
 public:
  static constexpr int kDefaultBlock = 10000;
  explicit BlendSchedule(const std::vector<double>& weights, int block = kDefaultBlock);
  struct Pick {
    int dataset;
    std::uint64_t index;  // the index-th sample drawn from `dataset`
  };
  Pick pick(std::uint64_t sample) const;
  // How many of the samples [0, n) come from dataset d.
  std::uint64_t count_before(int d, std::uint64_t n) const;
  int num_datasets() const { return int(per_block_.size()); }
  const std::vector<std::uint32_t>& per_block() const { return per_block_; }

 private:
  int block_;
  std::vector<std::uint32_t> per_block_;  // c_d
  std::vector<std::uint16_t> order_;      // dataset of each position in a block
  std::vector<std::uint32_t> rank_;       // index of each position among its dataset's in the block
};

class DatasetSampler {
 public:
  // `num_windows` windows; those with valid_hash(w) < valid_fraction are held out.
  DatasetSampler(std::int64_t num_windows, double valid_fraction, std::uint64_t seed, int dataset_index);
  std::int64_t num_train() const { return std::int64_t(train_.size()); }
  std::int64_t num_valid() const { return std::int64_t(valid_.size()); }
  // Window index of the k-th training sample drawn from this dataset, and its epoch (0-based).
  std::int64_t train_window(std::uint64_t k, std::uint64_t* epoch = nullptr);
  std::int64_t valid_window(std::int64_t i) const { return valid_[std::size_t(i)]; }
  static bool is_valid_window(std::int64_t w, double valid_fraction);

 private:
  void build_permutation(std::uint64_t epoch);
  std::vector<std::int64_t> train_, valid_, permutation_;
  std::uint64_t seed_;
  int dataset_index_;
  std::uint64_t current_epoch_ = ~0ull;
};

// The global samples of one data-parallel rank for one micro-batch.
struct SampleSpan {
  std::uint64_t first;
  int count;
};
// DP rank `dp_rank` of `dp_size`: its slice of global batch `batch` (B = global_batch_size).
SampleSpan dp_slice(std::uint64_t batch, int global_batch_size, int dp_size, int dp_rank);
// Micro-batch `micro` (0 <= micro < accumulation steps) of that slice.
SampleSpan micro_batch_span(std::uint64_t batch, int global_batch_size, int dp_size, int dp_rank,
                            int micro_batch_size, int micro);

// The k-th of `count` indices spread evenly over [0, total) (0 <= k < count <= total): a
// validation or evaluation set capped at `count` windows samples the whole held-out list (every
// dataset of a blend), not only its first dataset. count == total gives the identity.
inline std::int64_t spread_index(std::int64_t k, std::int64_t count, std::int64_t total) {
  return k * (total / count) + (k * (total % count)) / count;
}

}  // namespace strata::data
