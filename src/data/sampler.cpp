// Blend schedule, per-dataset window sampler and DP slices (sampler.hpp).
#include "strata/data/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/hash.hpp"

namespace strata::data {

namespace {

// Samples per block of each dataset: largest-remainder rounding of block * w / sum(w).
// at_least_one: every dataset gets a slot (fixed blends); else a weight of 0 gets none.
std::vector<std::uint32_t> block_counts(const std::vector<double>& weights, int block, bool at_least_one) {
  double total = 0;
  for (double w : weights) total += w;
  const std::size_t D = weights.size();
  std::vector<std::uint32_t> per(D, 0);
  std::vector<double> remainder(D);
  std::int64_t assigned = 0;
  for (std::size_t d = 0; d < D; ++d) {
    const double exact = double(block) * weights[d] / total;
    per[d] = std::uint32_t(std::floor(exact));
    if (at_least_one) per[d] = std::max<std::uint32_t>(1, per[d]);
    remainder[d] = exact - std::floor(exact);
    assigned += per[d];
  }
  std::vector<std::size_t> by_rem(D);
  std::iota(by_rem.begin(), by_rem.end(), 0);
  std::stable_sort(by_rem.begin(), by_rem.end(), [&](auto a, auto b) { return remainder[a] > remainder[b]; });
  for (std::size_t i = 0; assigned < block; i = (i + 1) % D, ++assigned) ++per[by_rem[i]];
  for (std::size_t i = D; assigned > block;) {  // minimums pushed us over: take from the largest
    i = std::size_t(std::max_element(per.begin(), per.end()) - per.begin());
    --per[i], --assigned;
  }
  return per;
}

}  // namespace

BlendSchedule::Block BlendSchedule::compose(const std::vector<double>& weights, int block,
                                            bool at_least_one) {
  Block b;
  b.per = block_counts(weights, block, at_least_one);
  const std::size_t D = weights.size();
  // Greedy interleave: at each position take the dataset furthest behind its target share.
  b.order.resize(std::size_t(block));
  b.rank.resize(std::size_t(block));
  std::vector<std::uint32_t> taken(D, 0);
  for (int p = 0; p < block; ++p) {
    std::size_t best = 0;
    double best_err = -1e300;
    for (std::size_t d = 0; d < D; ++d) {
      if (taken[d] >= b.per[d]) continue;
      const double err = double(b.per[d]) * double(p + 1) / double(block) - double(taken[d]);
      if (err > best_err) best_err = err, best = d;
    }
    b.order[std::size_t(p)] = std::uint16_t(best);
    b.rank[std::size_t(p)] = taken[best]++;
  }
  return b;
}

BlendSchedule::BlendSchedule(const std::vector<double>& weights, int block) : block_(block) {
  STRATA_CHECK(!weights.empty(), "blending needs at least one dataset");
  STRATA_CHECK(weights.size() < 65536, "too many datasets to blend (", weights.size(), ")");
  STRATA_CHECK(block >= int(weights.size()), "blend block (", block, ") smaller than the number of datasets");
  for (double w : weights) STRATA_CHECK(w > 0 && std::isfinite(w), "dataset weights must be > 0, got ", w);
  Block b = compose(weights, block, /*at_least_one=*/true);
  per_block_ = std::move(b.per);
  order_ = std::move(b.order);
  rank_ = std::move(b.rank);
}

BlendSchedule::BlendSchedule(std::vector<std::pair<std::uint64_t, std::vector<double>>> points, int block)
    : block_(block), points_(std::move(points)) {
  STRATA_CHECK(!points_.empty(), "a mixture schedule needs at least one point");
  const std::size_t D = points_[0].second.size();
  STRATA_CHECK(D > 0 && D < 65536, "a mixture schedule over ", D, " datasets");
  STRATA_CHECK(block >= int(D), "blend block (", block, ") smaller than the number of datasets");
  for (std::size_t i = 0; i < points_.size(); ++i) {
    STRATA_CHECK(points_[i].second.size() == D, "mixture schedule point ", i, " has ",
                 points_[i].second.size(), " weights, point 0 has ", D);
    STRATA_CHECK(i == 0 || points_[i].first > points_[i - 1].first,
                 "mixture schedule points must be in increasing order");
    double total = 0;
    for (double w : points_[i].second) {
      STRATA_CHECK(w >= 0 && std::isfinite(w), "mixture weights must be >= 0, got ", w);
      total += w;
    }
    STRATA_CHECK(total > 0, "mixture schedule point ", i, " has only zero weights");
  }
  per_block_ = block_counts(weights_at(std::uint64_t(block_) / 2), block_, false);
  marks_.push_back(std::vector<std::uint64_t>(D, 0));
  cursor_ = marks_[0];
}

std::vector<double> BlendSchedule::weights_at(std::uint64_t sample) const {
  if (points_.empty()) {
    std::vector<double> w(per_block_.begin(), per_block_.end());
    for (double& x : w) x /= double(block_);
    return w;
  }
  std::vector<double> w;
  if (sample <= points_.front().first) {
    w = points_.front().second;
  } else if (sample >= points_.back().first) {
    w = points_.back().second;
  } else {
    std::size_t i = 1;
    while (points_[i].first <= sample) ++i;
    const auto& [s0, w0] = points_[i - 1];
    const auto& [s1, w1] = points_[i];
    const double t = double(sample - s0) / double(s1 - s0);
    w.resize(w0.size());
    for (std::size_t d = 0; d < w.size(); ++d) w[d] = (1 - t) * w0[d] + t * w1[d];
  }
  double total = 0;
  for (double x : w) total += x;
  for (double& x : w) x /= total;
  return w;
}

const BlendSchedule::Block& BlendSchedule::block_at(std::uint64_t b) const {
  if (b != cached_block_) {
    cached_ = compose(weights_at(b * std::uint64_t(block_) + std::uint64_t(block_) / 2), block_, false);
    cached_block_ = b;
  }
  return cached_;
}

const std::vector<std::uint64_t>& BlendSchedule::prefix_at(std::uint64_t b) const {
  if (b < cursor_block_) {  // backwards: restart from the mark at or below b
    const std::uint64_t m = std::min<std::uint64_t>(b / kPrefixMark, marks_.size() - 1);
    cursor_ = marks_[std::size_t(m)];
    cursor_block_ = m * kPrefixMark;
  } else if (b / kPrefixMark > cursor_block_ / kPrefixMark && b / kPrefixMark < marks_.size()) {
    cursor_ = marks_[std::size_t(b / kPrefixMark)];  // far ahead, past a known mark
    cursor_block_ = b / kPrefixMark * kPrefixMark;
  }
  while (cursor_block_ < b) {
    const std::vector<std::uint32_t> c = block_counts(
        weights_at(cursor_block_ * std::uint64_t(block_) + std::uint64_t(block_) / 2), block_, false);
    for (std::size_t d = 0; d < c.size(); ++d) cursor_[d] += c[d];
    ++cursor_block_;
    if (cursor_block_ % kPrefixMark == 0 && cursor_block_ / kPrefixMark == marks_.size())
      marks_.push_back(cursor_);
  }
  return cursor_;
}

BlendSchedule::Pick BlendSchedule::pick(std::uint64_t sample) const {
  const std::uint64_t q = sample / std::uint64_t(block_), p = sample % std::uint64_t(block_);
  if (!points_.empty()) {
    const std::lock_guard lock(mu_);
    const Block& blk = block_at(q);
    const int d = blk.order[p];
    return {d, prefix_at(q)[std::size_t(d)] + blk.rank[p]};
  }
  const int d = order_[p];
  return {d, q * per_block_[std::size_t(d)] + rank_[p]};
}

std::uint64_t BlendSchedule::count_before(int d, std::uint64_t n) const {
  const std::uint64_t q = n / std::uint64_t(block_), p = n % std::uint64_t(block_);
  if (!points_.empty()) {
    const std::lock_guard lock(mu_);
    std::uint64_t c = prefix_at(q)[std::size_t(d)];
    if (p > 0) {
      const Block& blk = block_at(q);
      for (std::uint64_t i = 0; i < p; ++i) c += blk.order[i] == d;
    }
    return c;
  }
  std::uint64_t c = q * per_block_[std::size_t(d)];
  for (std::uint64_t i = 0; i < p; ++i) c += order_[i] == d;
  return c;
}

double Pacing::competence(std::uint64_t sample) const {
  if (samples == 0 || sample >= samples) return 1.0;
  const double t = double(sample) / double(samples), c0 = std::clamp(start, 1e-9, 1.0);
  switch (kind) {
    case Kind::linear: return std::min(1.0, c0 + (1 - c0) * t);
    case Kind::root: return std::min(1.0, std::sqrt(c0 * c0 + (1 - c0 * c0) * t));
    case Kind::step: return std::min(1.0, c0 + (1 - c0) * std::floor(double(stages) * t) / double(stages));
  }
  return 1.0;
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

void DatasetSampler::set_curriculum(const std::vector<double>& difficulty, const Pacing& pacing,
                                    bool reverse) {
  sorted_ = train_;
  for (const std::int64_t w : sorted_)
    STRATA_CHECK(std::size_t(w) < difficulty.size(), "curriculum: no difficulty for window ", w);
  std::stable_sort(sorted_.begin(), sorted_.end(), [&](std::int64_t a, std::int64_t b) {
    const double da = difficulty[std::size_t(a)], db = difficulty[std::size_t(b)];
    if (da != db) return reverse ? da > db : da < db;
    return a < b;
  });
  pacing_ = pacing;
}

std::int64_t DatasetSampler::train_window(std::uint64_t k, std::uint64_t sample, std::uint64_t* epoch) {
  if (sorted_.empty()) return train_window(k, epoch);
  const double c = pacing_.competence(sample);
  if (c >= 1.0) return train_window(k, epoch);
  const auto W = std::uint64_t(sorted_.size());
  const std::uint64_t n = std::clamp<std::uint64_t>(std::uint64_t(std::ceil(c * double(W))), 1, W);
  const core::CounterRng rng(seed_ ^ (std::uint64_t(dataset_index_) << 48), "data.curriculum");
  if (epoch) *epoch = k / W;
  return sorted_[std::size_t(rng.below(n, k))];
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
