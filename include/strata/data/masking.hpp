// BERT's masked-LM corruption (Devlin et al. 2019, sec. 3.1 "Task #1: Masked LM"), as a pure
// function of (seed, stream, sample index, position):
//
//   u0, u1, r = Philox(key = (seed, stream), counter = sample, sub-stream = position)
//   chosen    = u0 < p                                (p = train.mlm_probability, 0.15)
//   input     = [MASK]                 if chosen and u1 < f_mask                (0.8)
//             = uniform random token   if chosen and f_mask <= u1 < f_mask + f_random (0.1)
//             = the original token     otherwise
//   target    = the original token if chosen, else -1 (no loss)
//
// Each position is chosen independently (a Bernoulli draw, not BERT's fixed count per
// sequence), so the decision at position t does not depend on the sequence length, the batch,
// the rank or the step: every parallel layout, a resumed run and a shorter sequence (sequence
// length warm-up takes the first t positions) see the same masks. The number of chosen
// positions of a global batch depends only on the sample indices, so every rank computes it
// without communication (count_chosen) and the gradient scale 1 / (chosen tokens) is the same
// on every rank and layout.
//
// The [MASK] id (docs/objectives.md): the tokenizer's own special token "[MASK]" (or "<mask>")
// when it has one, else the first id past the tokenizer's vocabulary; model.vocab_size must
// cover it (resolve: SampleSource::mask_token).
#pragma once
#include <cstdint>

#include "strata/core/rng.hpp"

namespace strata::data {

struct MaskingOptions {
  double probability = 0.15;     // positions chosen
  double mask_fraction = 0.8;    // of the chosen: replaced by [MASK]
  double random_fraction = 0.1;  // of the chosen: replaced by a random token
  std::int32_t mask_id = -1;
  std::int32_t random_vocab = 0;  // random tokens are drawn from [0, random_vocab)
  // Position 0 holds [CLS] (SampleSource::MaskToken::cls_id >= 0): never chosen, as BERT never
  // predicts its special tokens. Still a function of the position only.
  bool protect_first = false;
};

// Which sample indices a masker draws for: training samples and held-out windows are keyed
// apart, so validation window i and training sample i get unrelated masks.
enum class MaskStream { train, valid };

class Masker {
 public:
  Masker(const MaskingOptions& options, std::uint64_t seed, MaskStream stream);

  bool chosen(std::uint64_t sample, int position) const;
  // window: the sample's first seq_len tokens (at least). inputs[t] = the corrupted token,
  // targets[t] = window[t] where chosen, else -1; t < seq_len.
  void apply(std::uint64_t sample, const std::int32_t* window, int seq_len, std::int32_t* inputs,
             std::int32_t* targets) const;
  // Chosen positions among the first seq_len of samples [first, first + count).
  std::int64_t count_chosen(std::uint64_t first, std::int64_t count, int seq_len) const;
  const MaskingOptions& options() const { return opt_; }

 private:
  MaskingOptions opt_;
  core::CounterRng rng_;
  std::uint32_t select_threshold_;  // u0 < threshold / 2^32 <=> chosen
};

}  // namespace strata::data
