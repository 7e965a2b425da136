// Temperature, top-k, top-p and greedy token choice; see sampling.hpp.
#include "strata/model/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"

namespace strata::model {

void validate(const SamplingOptions& opt) {
  if (!(opt.temperature >= 0) || !std::isfinite(opt.temperature))
    throw make_error("--temperature must be >= 0 (0 = greedy), got ", opt.temperature);
  if (opt.top_k < 0) throw make_error("--top-k must be >= 0 (0 = off), got ", opt.top_k);
  if (!(opt.top_p > 0 && opt.top_p <= 1))
    throw make_error("--top-p must be in (0, 1] (1 = off), got ", opt.top_p);
}

template <class T>
std::int32_t argmax(std::span<const T> logits) {
  STRATA_CHECK(!logits.empty(), "argmax of an empty row");
  return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());  // first maximum
}

Sampler::Sampler(const SamplingOptions& opt, int vocab_size)
    : opt_(opt), probs_(std::size_t(vocab_size)), order_(std::size_t(vocab_size)) {
  validate(opt);
}

template <class T>
std::span<const double> Sampler::distribution(std::span<const T> logits) {
  const std::size_t V = probs_.size();
  STRATA_CHECK(logits.size() == V, "sampler: ", logits.size(), " logits for a vocabulary of ", V);
  std::fill(probs_.begin(), probs_.end(), 0.0);
  if (opt_.greedy || opt_.temperature == 0) {
    probs_[std::size_t(argmax(logits))] = 1.0;
    return probs_;
  }
  // Softmax at the temperature, in double.
  const double mx = double(*std::max_element(logits.begin(), logits.end()));
  double z = 0;
  for (std::size_t v = 0; v < V; ++v) z += probs_[v] = std::exp((double(logits[v]) - mx) / opt_.temperature);
  for (double& p : probs_) p /= z;
  // Token ids by decreasing probability (ties: lower id first).
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(), [&](std::int32_t a, std::int32_t b) {
    return probs_[std::size_t(a)] > probs_[std::size_t(b)];
  });
  kept_ = opt_.top_k > 0 ? std::min<std::int64_t>(opt_.top_k, std::int64_t(V)) : std::int64_t(V);
  if (opt_.top_p < 1) {
    // Nucleus over the top-k set, renormalised: the smallest prefix reaching top_p.
    double mass = 0;
    for (std::int64_t i = 0; i < kept_; ++i) mass += probs_[std::size_t(order_[std::size_t(i)])];
    double cum = 0;
    std::int64_t keep = 0;
    while (keep < kept_) {
      cum += probs_[std::size_t(order_[std::size_t(keep)])] / mass;
      ++keep;
      if (cum >= opt_.top_p) break;
    }
    kept_ = keep;
  }
  double kept_mass = 0;
  for (std::int64_t i = 0; i < kept_; ++i) kept_mass += probs_[std::size_t(order_[std::size_t(i)])];
  for (std::int64_t i = kept_; i < std::int64_t(V); ++i) probs_[std::size_t(order_[std::size_t(i)])] = 0;
  for (std::int64_t i = 0; i < kept_; ++i) probs_[std::size_t(order_[std::size_t(i)])] /= kept_mass;
  return probs_;
}

template <class T>
std::int32_t Sampler::next(std::span<const T> logits, std::uint64_t step) {
  if (opt_.greedy || opt_.temperature == 0) return argmax(logits);
  distribution(logits);
  // Inverse CDF over the kept tokens in decreasing-probability order.
  const double u = core::CounterRng(opt_.seed, "strata.generate").uniform(step);
  double cum = 0;
  for (std::int64_t i = 0; i < kept_; ++i) {
    cum += probs_[std::size_t(order_[std::size_t(i)])];
    if (u < cum) return order_[std::size_t(i)];
  }
  return order_[std::size_t(kept_ - 1)];  // u beyond a cumulative sum rounded below 1
}

#define STRATA_INSTANTIATE(T)                                                           \
  template std::int32_t argmax<T>(std::span<const T>);                                  \
  template std::span<const double> Sampler::distribution<T>(std::span<const T> logits); \
  template std::int32_t Sampler::next<T>(std::span<const T> logits, std::uint64_t step);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::model
