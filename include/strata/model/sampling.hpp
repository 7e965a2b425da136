// Choosing the next token from a row of logits.
//
//   greedy (or temperature 0):  argmax_v logits[v] (the lowest id on ties)
//   otherwise:  p = softmax(logits / temperature)
//               top-k: keep the k most probable tokens (k = 0: all)
//               top-p (nucleus, Holtzman et al. 2020, section 3.1): of those, keep the
//                      smallest most-probable set whose probability reaches top_p
//               renormalise the kept set and draw from it with u = uniform(seed, step)
// The draw is a pure function of (seed, step, logits) — the counter-based RNG of
// core/rng.hpp — so tensor-parallel ranks holding the same gathered logits pick the same
// token without communicating, and a run is reproducible from its seed.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace strata::model {

struct SamplingOptions {
  bool greedy = false;
  double temperature = 1.0;  // 0: greedy
  int top_k = 0;             // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  std::uint64_t seed = 0;
};

// Throws strata::Error naming the option when a value is out of range.
void validate(const SamplingOptions& opt);

template <class T>
std::int32_t argmax(std::span<const T> logits);

// Work buffers sized once for a vocabulary; next() does not allocate.
class Sampler {
 public:
  Sampler(const SamplingOptions& opt, int vocab_size);
  // The token for generation step `step` (0, 1, ...).
  template <class T>
  std::int32_t next(std::span<const T> logits, std::uint64_t step);
  // The filtered, renormalised distribution next() draws from (zero outside the kept set).
  template <class T>
  std::span<const double> distribution(std::span<const T> logits);
  const SamplingOptions& options() const { return opt_; }

 private:
  SamplingOptions opt_;
  std::vector<double> probs_;
  std::vector<std::int32_t> order_;  // token ids by decreasing probability
  std::int64_t kept_ = 0;            // order_[0..kept_) is the kept set
};

}  // namespace strata::model
