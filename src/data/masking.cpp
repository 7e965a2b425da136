// Masked-LM corruption (masking.hpp).
#include "strata/data/masking.hpp"

#include <cmath>

#include "strata/core/error.hpp"

namespace strata::data {

namespace {
// The chosen test in integers (no floating point on the hot path, exact on every platform):
// word < round(p * 2^32), saturating at 2^32 - 1 for p -> 1.
std::uint32_t threshold_of(double p) {
  const double t = std::round(p * 4294967296.0);
  return t >= 4294967295.0 ? 0xFFFFFFFFu : std::uint32_t(t);
}
double unit(std::uint32_t w) { return (double(w >> 8) + 0.5) / 16777216.0; }
}  // namespace

Masker::Masker(const MaskingOptions& options, std::uint64_t seed, MaskStream stream)
    : opt_(options),
      rng_(seed, stream == MaskStream::train ? "data.mlm.train" : "data.mlm.valid"),
      select_threshold_(threshold_of(options.probability)) {
  STRATA_CHECK(opt_.probability > 0 && opt_.probability <= 1, "masked LM: the masking probability ",
               opt_.probability, " must be in (0, 1]");
  STRATA_CHECK(opt_.mask_fraction >= 0 && opt_.random_fraction >= 0 &&
                   opt_.mask_fraction + opt_.random_fraction <= 1.0 + 1e-12,
               "masked LM: mask fraction ", opt_.mask_fraction, " + random fraction ", opt_.random_fraction,
               " must be fractions summing to at most 1");
  STRATA_CHECK(opt_.mask_id >= 0, "masked LM: no [MASK] token id");
  STRATA_CHECK(opt_.random_fraction == 0 || opt_.random_vocab > 0,
               "masked LM: random replacement needs a vocabulary");
}

bool Masker::chosen(std::uint64_t sample, int position) const {
  if (position == 0 && opt_.protect_first) return false;
  return rng_.bits(sample, std::uint32_t(position))[0] < select_threshold_;
}

void Masker::apply(std::uint64_t sample, const std::int32_t* window, int seq_len, std::int32_t* inputs,
                   std::int32_t* targets) const {
  for (int t = 0; t < seq_len; ++t) {
    const auto w = rng_.bits(sample, std::uint32_t(t));
    inputs[t] = window[t];
    targets[t] = -1;
    if (w[0] >= select_threshold_ || (t == 0 && opt_.protect_first)) continue;
    targets[t] = window[t];
    const double u = unit(w[1]);
    if (u < opt_.mask_fraction) {
      inputs[t] = opt_.mask_id;
    } else if (u < opt_.mask_fraction + opt_.random_fraction) {
      const std::uint64_t r = (std::uint64_t(w[2]) << 32) | w[3];
      inputs[t] = std::int32_t(r % std::uint64_t(opt_.random_vocab));
    }
  }
}

std::int64_t Masker::count_chosen(std::uint64_t first, std::int64_t count, int seq_len) const {
  std::int64_t n = 0;
  for (std::int64_t s = 0; s < count; ++s)
    for (int t = 0; t < seq_len; ++t) n += chosen(first + std::uint64_t(s), t) ? 1 : 0;
  return n;
}

}  // namespace strata::data
