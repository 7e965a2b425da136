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
// Curriculum (docs/data-pipeline.md, "Quality and curriculum"), still a pure function of s:
//   - a mixture schedule makes the weights a piecewise-linear function of the sample index:
//     block b (samples [bM, (b+1)M), M = kScheduleBlock) holds the largest-remainder rounding
//     of M w(bM + M/2), interleaved as above; the index of s within its dataset adds the
//     counts of the earlier blocks (a running sum, with every 256th block's kept);
//   - difficulty ordering: the training windows of a dataset sorted from easy to hard, and a
//     pacing function c(s) in (0, 1] (competence, Platanios et al. 2019, sec. 3.2): while
//     c(s) < 1, the k-th sample of the dataset is the window at position floor(u n) of the
//     sorted list, n = ceil(c(s) W_train), u a counter-RNG draw keyed by (seed, dataset, k);
//     from c = 1 on, the epoch permutations above.
//
// Data-parallel ranks take slices: DP rank r of d gets [r B_local, (r+1) B_local) of each
// global batch of B = d B_local samples, so the stream does not depend on d.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace strata::data {

class BlendSchedule {
 public:
  static constexpr int kDefaultBlock = 10000;
  static constexpr int kScheduleBlock = 100;         // samples per block of a scheduled mixture
  static constexpr std::uint64_t kPrefixMark = 256;  // a scheduled mixture keeps every 256th block's prefix
  // Fixed weights (> 0 each).
  explicit BlendSchedule(const std::vector<double>& weights, int block = kDefaultBlock);
  // A mixture schedule: (sample index, weights >= 0) points in increasing order; weights are
  // linear in between and constant before the first and after the last point.
  BlendSchedule(std::vector<std::pair<std::uint64_t, std::vector<double>>> points,
                int block = kScheduleBlock);
  struct Pick {
    int dataset;
    std::uint64_t index;  // the index-th sample drawn from `dataset`
  };
  Pick pick(std::uint64_t sample) const;
  // How many of the samples [0, n) come from dataset d.
  std::uint64_t count_before(int d, std::uint64_t n) const;
  int num_datasets() const { return int(per_block_.size()); }
  // Samples per block of each dataset (the first block's, for a schedule).
  const std::vector<std::uint32_t>& per_block() const { return per_block_; }
  bool scheduled() const { return !points_.empty(); }
  // The (unrounded) weights at sample s, normalised to sum 1.
  std::vector<double> weights_at(std::uint64_t sample) const;

 private:
  struct Block {  // one block's composition and interleave
    std::vector<std::uint32_t> per;
    std::vector<std::uint16_t> order;
    std::vector<std::uint32_t> rank;
  };
  static Block compose(const std::vector<double>& weights, int block, bool at_least_one);
  const Block& block_at(std::uint64_t b) const;                        // scheduled: caller holds mu_
  const std::vector<std::uint64_t>& prefix_at(std::uint64_t b) const;  // counts before block b; holds mu_

  int block_;
  std::vector<std::uint32_t> per_block_;  // c_d
  std::vector<std::uint16_t> order_;      // dataset of each position in a block
  std::vector<std::uint32_t> rank_;       // index of each position among its dataset's in the block
  // Scheduled mixtures only.
  std::vector<std::pair<std::uint64_t, std::vector<double>>> points_;
  mutable std::mutex mu_;  // pick() (loader) and count_before() (checkpoints)
  // Samples of each dataset before block b: kept for every kPrefixMark-th block (marks_[m] is
  // block m kPrefixMark's), and for one moving cursor that sequential reads advance block by
  // block (a backward step restarts from the mark below).
  mutable std::vector<std::vector<std::uint64_t>> marks_;
  mutable std::vector<std::uint64_t> cursor_;
  mutable std::uint64_t cursor_block_ = 0;
  mutable std::uint64_t cached_block_ = ~0ull;
  mutable Block cached_;
};

// Competence c(s) in (0, 1] of a difficulty curriculum: the share of a dataset's easiest
// windows samples are drawn from. t = min(1, s / samples), c0 = start:
//   linear  c0 + (1 - c0) t
//   root    sqrt(c0^2 + (1 - c0^2) t)                (Platanios et al. 2019, eq. 7)
//   step    c0 + (1 - c0) floor(stages t) / stages  (Hacohen & Weinshall 2019's staircase)
struct Pacing {
  enum class Kind { linear, root, step } kind = Kind::root;
  double start = 0.1;
  std::uint64_t samples = 0;  // samples until c = 1
  int stages = 4;
  double competence(std::uint64_t sample) const;
};

class DatasetSampler {
 public:
  // `num_windows` windows; those with valid_hash(w) < valid_fraction are held out.
  DatasetSampler(std::int64_t num_windows, double valid_fraction, std::uint64_t seed, int dataset_index);
  std::int64_t num_train() const { return std::int64_t(train_.size()); }
  std::int64_t num_valid() const { return std::int64_t(valid_.size()); }
  // Window index of the k-th training sample drawn from this dataset, and its epoch (0-based).
  std::int64_t train_window(std::uint64_t k, std::uint64_t* epoch = nullptr);
  // Difficulty ordering: difficulty[w] for every window w (training and held-out) of the
  // dataset; training windows are sorted by (difficulty, w), descending when `reverse`.
  void set_curriculum(const std::vector<double>& difficulty, const Pacing& pacing, bool reverse);
  bool has_curriculum() const { return !sorted_.empty(); }
  // The k-th sample of this dataset when it is global sample `sample`: the curriculum's draw
  // while the competence is below 1, else train_window(k).
  std::int64_t train_window(std::uint64_t k, std::uint64_t sample, std::uint64_t* epoch);
  // Training windows from easiest to hardest (empty without a curriculum).
  const std::vector<std::int64_t>& sorted_windows() const { return sorted_; }
  std::int64_t valid_window(std::int64_t i) const { return valid_[std::size_t(i)]; }
  static bool is_valid_window(std::int64_t w, double valid_fraction);

 private:
  void build_permutation(std::uint64_t epoch);
  std::vector<std::int64_t> train_, valid_, permutation_, sorted_;
  Pacing pacing_;
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
