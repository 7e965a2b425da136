// Blend schedule, per-dataset window sampler and DP slices (sampler.hpp).
#include "strata/data/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/hash.hpp"

namespace strata::data {

BlendSchedule::BlendSchedule(const std::vector<double>& weights, int block) : block_(block) {
  STRATA_CHECK(!weights.empty(), "blending needs at least one dataset");
  STRATA_CHECK(weights.size() < 65536, "too many datasets to blend (", weights.size(), ")");
  STRATA_CHECK(block >= int(weights.size()), "blend block (", block, ") smaller than the number of datasets");
  double total = 0;
  for (double w : weights) {
    STRATA_CHECK(w > 0 && std::isfinite(w), "dataset weights must be > 0, got ", w);
    total += w;
  }
  // Largest-remainder rounding of block * w / total; every dataset gets at least one slot.
  const std::size_t D = weights.size();
  per_block_.assign(D, 0);
  std::vector<double> remainder(D);
  std::int64_t assigned = 0;
  for (std::size_t d = 0; d < D; ++d) {
    const double exact = double(block) * weights[d] / total;
    per_block_[d] = std::max<std::uint32_t>(1, std::uint32_t(std::floor(exact)));
    remainder[d] = exact - std::floor(exact);
    assigned += per_block_[d];
  }
  std::vector<std::size_t> by_rem(D);
  std::iota(by_rem.begin(), by_rem.end(), 0);
  std::stable_sort(by_rem.begin(), by_rem.end(), [&](auto a, auto b) { return remainder[a] > remainder[b]; });
  for (std::size_t i = 0; assigned < block; i = (i + 1) % D, ++assigned) ++per_block_[by_rem[i]];
  for (std::size_t i = D; assigned > block; ) {  // minimums pushed us over: take from the largest
    i = std::size_t(std::max_element(per_block_.begin(), per_block_.end()) - per_block_.begin());
    --per_block_[i], --assigned;
  }
  // Greedy interleave: at each position take the dataset furthest behind its target share.
  order_.resize(std::size_t(block));
  rank_.resize(std::size_t(block));
  std::vector<std::uint32_t> taken(D, 0);
  for (int p = 0; p < block; ++p) {
    std::size_t best = 0;
    double best_err = -1e300;
    for (std::size_t d = 0; d < D; ++d) {
      if (taken[d] >= per_block_[d]) continue;
      const double err = double(per_block_[d]) * double(p + 1) / double(block) - double(taken[d]);
      if (err > best_err) best_err = err, best = d;
    }
    order_[std::size_t(p)] = std::uint16_t(best);
    rank_[std::size_t(p)] = taken[best]++;
  }
}

BlendSchedule::Pick BlendSchedule::pick(std::uint64_t sample) const {
  const std::uint64_t q = sample / std::uint64_t(block_), p = sample % std::uint64_t(block_);
  const int d = order_[p];
  return {d, q * per_block_[std::size_t(d)] + rank_[p]};
}

std::uint64_t BlendSchedule::count_before(int d, std::uint64_t n) const {
  const std::uint64_t q = n / std::uint64_t(block_), p = n % std::uint64_t(block_);
  std::uint64_t c = q * per_block_[std::size_t(d)];
  for (std::uint64_t i = 0; i < p; ++i) c += order_[i] == d;
  return c;
}

bool DatasetSampler::is_valid_window(std::int64_t w, double valid_fraction) {
  if (valid_fraction <= 0) return false;
  // A fixed key (not the training seed): the validation split stays put across runs.
  const double u = double(mix64(std::uint64_t(w) ^ 0x76616C6964ull) >> 11) * 0x1.0p-53;
  return u < valid_fraction;
}

DatasetSampler::DatasetSampler(std::int64_t num_windows, double valid_fraction, std::uint64_t seed,
                               int dataset_index)
    : seed_(seed), dataset_index_(dataset_index) {
  for (std::int64_t w = 0; w < num_windows; ++w)
    (is_valid_window(w, valid_fraction) ? valid_ : train_).push_back(w);
  if (valid_fraction > 0 && valid_.empty() && train_.size() > 1) {  // at least one held-out window
    valid_.push_back(train_.back());
    train_.pop_back();
  }
  permutation_.resize(train_.size());
}

void DatasetSampler::build_permutation(std::uint64_t epoch) {
  const core::CounterRng rng(seed_ ^ (epoch * 0x9E3779B97F4A7C15ull) ^ (std::uint64_t(dataset_index_) << 48),
                             "data.blend.sampler");
  const auto n = std::int64_t(train_.size());
  for (std::int64_t i = 0; i < n; ++i) permutation_[std::size_t(i)] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = std::int64_t(rng.below(std::uint64_t(i + 1), std::uint64_t(i)));
    std::swap(permutation_[std::size_t(i)], permutation_[std::size_t(j)]);
  }
  current_epoch_ = epoch;
}

std::int64_t DatasetSampler::train_window(std::uint64_t k, std::uint64_t* epoch) {
  STRATA_CHECK(!train_.empty(), "dataset has no training windows");
  const std::uint64_t e = k / train_.size();
  if (e != current_epoch_) build_permutation(e);
  if (epoch) *epoch = e;
  return train_[std::size_t(permutation_[std::size_t(k % train_.size())])];
}

SampleSpan dp_slice(std::uint64_t batch, int global_batch_size, int dp_size, int dp_rank) {
  STRATA_CHECK(dp_size > 0 && global_batch_size % dp_size == 0, "global batch ", global_batch_size,
               " is not divisible by dp ", dp_size);
  STRATA_CHECK(dp_rank >= 0 && dp_rank < dp_size, "dp_rank ", dp_rank, " outside [0, ", dp_size, ")");
  const int local = global_batch_size / dp_size;
  return {batch * std::uint64_t(global_batch_size) + std::uint64_t(dp_rank) * std::uint64_t(local), local};
}

SampleSpan micro_batch_span(std::uint64_t batch, int global_batch_size, int dp_size, int dp_rank,
                            int micro_batch_size, int micro) {
  const SampleSpan s = dp_slice(batch, global_batch_size, dp_size, dp_rank);
  STRATA_CHECK(s.count % micro_batch_size == 0 && micro >= 0 && micro * micro_batch_size < s.count,
               "micro-batch ", micro, " of ", micro_batch_size, " does not fit the local batch of ", s.count);
  return {s.first + std::uint64_t(micro) * std::uint64_t(micro_batch_size), micro_batch_size};
}

}  // namespace strata::data
