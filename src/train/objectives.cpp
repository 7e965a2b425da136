// Masked LM, evaluation and sequence-length warm-up for the trainer (objectives.hpp).
#include "strata/train/objectives.hpp"

#include <algorithm>
#include <cmath>

#include "strata/core/error.hpp"
#include "strata/data/sampler.hpp"

namespace strata::train {

// ---- sequence-length warm-up --------------------------------------------------------------

int warmup_start_len(const config::TrainConfig& t) {
  const int start = t.seq_len_warmup_start > 0 ? t.seq_len_warmup_start : std::max(8, t.seq_len / 8);
  return std::min(start, t.seq_len);
}

int warmup_seq_len(const config::TrainConfig& t, std::uint64_t tokens_seen) {
  if (t.seq_len_warmup == 0 || tokens_seen >= t.seq_len_warmup) return t.seq_len;
  const int start = warmup_start_len(t);
  const double frac = double(tokens_seen) / double(t.seq_len_warmup);
  const int raw = start + int(double(t.seq_len - start) * frac);
  return std::clamp(raw / 8 * 8, start, t.seq_len);
}

std::uint64_t tokens_before_step(const config::TrainConfig& t, int global_batch, long step) {
  std::uint64_t seen = 0;
  for (long s = 1; s < step; ++s)
    seen += std::uint64_t(global_batch) * std::uint64_t(warmup_seq_len(t, seen));
  return seen;
}

// ---- masked LM ------------------------------------------------------------------------------

std::unique_ptr<data::Masker> make_masker(const config::TrainConfig& t, const data::SampleSource& source,
                                          data::MaskStream stream) {
  if (t.objective != config::ObjectiveKind::masked_lm) return nullptr;
  const data::SampleSource::MaskToken m = source.mask_token();
  STRATA_CHECK(m.mask_id >= 0,
               "masked LM: the data source resolved no [MASK] token (it was not opened for masked LM)");
  data::MaskingOptions o;
  o.probability = t.mlm_probability;
  o.mask_fraction = t.mlm_mask_fraction;
  o.random_fraction = t.mlm_random_fraction;
  o.mask_id = m.mask_id;
  o.random_vocab = m.data_vocab;
  o.protect_first = m.cls_id >= 0;  // [CLS] opens every sample (WordPiece): never a target, as in BERT
  return std::make_unique<data::Masker>(o, t.seed, stream);
}

std::int64_t loss_tokens(const data::Masker* masker, std::uint64_t batch, int global_batch, int seq_len) {
  if (!masker) return std::int64_t(global_batch) * seq_len;
  return masker->count_chosen(batch * std::uint64_t(global_batch), global_batch, seq_len);
}

// ---- evaluation -----------------------------------------------------------------------------

ValidationSet::ValidationSet(data::SampleSource& source, const data::Masker* masker, int windows,
                             const BatchLayout& layout, int seq_len, bool reads_data)
    : layout_(layout), seq_len_(seq_len) {
  n_ = std::min<std::int64_t>(windows, source.num_valid_windows());
  const std::int64_t G = layout.global();
  rounds_ = int((n_ + G - 1) / G);
  if (!reads_data || n_ == 0) return;
  const std::int64_t local = std::int64_t(layout.micro) * layout.microbatches;
  const std::size_t elems = std::size_t(rounds_) * std::size_t(local) * std::size_t(seq_len);
  tokens_.assign(elems, 0);  // padding rows: token 0, no target
  targets_.assign(elems, -1);
  std::vector<std::int32_t> window(std::size_t(seq_len) + 1);
  for (int r = 0; r < rounds_; ++r)
    for (std::int64_t j = 0; j < local; ++j) {
      const std::int64_t k = r * G + layout.dp_rank * local + j;  // the window's place in the set
      if (k >= n_) break;
      // The set spreads over the whole held-out list (strata eval --windows picks the same), and
      // masks are keyed by the window's index in that list.
      const std::int64_t i = data::spread_index(k, n_, source.num_valid_windows());
      source.valid_window(i, window.data());
      std::int32_t* tok =
          tokens_.data() + (std::size_t(r) * std::size_t(local) + std::size_t(j)) * std::size_t(seq_len);
      std::int32_t* tgt = targets_.data() + (tok - tokens_.data());
      if (masker) {
        masker->apply(std::uint64_t(i), window.data(), seq_len, tok, tgt);
      } else {
        std::copy_n(window.data(), seq_len, tok);
        std::copy_n(window.data() + 1, seq_len, tgt);
      }
    }
}

void ValidationSet::fill(int round, int mb, std::int32_t* tokens, std::int32_t* targets) const {
  STRATA_CHECK(!tokens_.empty(), "validation set: this rank holds no windows");
  const std::size_t mb_elems = std::size_t(layout_.micro) * std::size_t(seq_len_);
  const std::size_t at =
      (std::size_t(round) * std::size_t(layout_.microbatches) + std::size_t(mb)) * mb_elems;
  std::copy_n(tokens_.data() + at, mb_elems, tokens);
  std::copy_n(targets_.data() + at, mb_elems, targets);
}

double EvalResult::perplexity() const { return std::exp(loss); }

EvalResult evaluate(parallel::Engine& engine, comm::RankGrid& grid, const ValidationSet& set) {
  // At the engine's planned (full) length; the length in use before is restored after.
  const int before = engine.seq_len();
  engine.set_seq_len(engine.planned_seq_len());
  double sum[2] = {0, 0};  // loss, target tokens
  for (int r = 0; r < set.rounds(); ++r) {
    const parallel::Engine::FillBatch fill = [&](int mb, std::int32_t* tokens, std::int32_t* targets) {
      set.fill(r, mb, tokens, targets);
    };
    const parallel::StepStats s = engine.evaluate(fill, engine.microbatches());
    sum[0] += s.loss.sum;
    sum[1] += double(s.loss.count);
  }
  engine.set_seq_len(before);
  // The loss lives on the last stage (others add 0); TP ranks all hold the whole loss.
  grid.pp_group().all_reduce(sum, 2);
  grid.dp_group().all_reduce(sum, 2);
  EvalResult e;
  e.tokens = std::int64_t(sum[1]);
  e.loss = sum[1] > 0 ? sum[0] / sum[1] : 0.0;
  return e;
}

}  // namespace strata::train
