// The trainer's objective-dependent pieces (docs/objectives.md), kept out of the loop:
//
//   masked LM      make_masker(): BERT's corruption keyed by (seed, sample index), applied by
//                  the loader; loss_tokens(): the chosen positions of a global batch, known on
//                  every rank before the step, so grad_scale = 1 / loss_tokens agrees exactly
//                  across layouts (causal LM: every position is a target, G x t)
//   evaluation     ValidationSet: the first eval.windows held-out windows, this DP rank's share,
//                  read and prepared once before training (masked by window index for masked
//                  LM); evaluate(): forwards only through the pipeline, loss summed over PP and
//                  DP, so every layout gets the same loss (up to fp32 summation order)
//   seq-len warm-up warmup_seq_len(): the sequence length of the next step from the tokens
//                  already trained on (linear from the start length to train.seq_len, in
//                  multiples of 8)
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/masking.hpp"
#include "strata/parallel/engine.hpp"

namespace strata::train {

// ---- sequence-length warm-up --------------------------------------------------------------
// The start length: train.seq_len_warmup_start, or max(8, seq_len / 8), at most seq_len.
int warmup_start_len(const config::TrainConfig& t);
// The sequence length of a step that begins after `tokens_seen` training tokens:
//   seq_len                                 when seq_len_warmup == 0 or tokens_seen >= it
//   max(start, 8 floor((start + (seq_len - start) tokens_seen / seq_len_warmup) / 8))   else
int warmup_seq_len(const config::TrainConfig& t, std::uint64_t tokens_seen);
// Tokens trained on before step `step` (1-based) with `global_batch` sequences per step: the
// schedule replayed from step 1 (what a resumed run needs to continue it).
std::uint64_t tokens_before_step(const config::TrainConfig& t, int global_batch, long step);

// ---- masked LM ------------------------------------------------------------------------------
// Null for causal LM. The source must have been made with masked_lm = true.
std::unique_ptr<data::Masker> make_masker(const config::TrainConfig& t, const data::SampleSource& source,
                                          data::MaskStream stream);
// Target tokens of global batch `batch` (G sequences of seq_len): G x seq_len for causal LM,
// the chosen positions for masked LM.
std::int64_t loss_tokens(const data::Masker* masker, std::uint64_t batch, int global_batch, int seq_len);

// ---- evaluation -----------------------------------------------------------------------------
struct BatchLayout {
  int micro = 1;         // sequences per micro-batch
  int microbatches = 1;  // micro-batches per DP rank and round
  int dp = 1, dp_rank = 0;
  int global() const { return micro * microbatches * dp; }
};

// The fixed validation set: windows 0 .. n-1 of the source's held-out list, evaluated in
// rounds of one global batch; window i is in round i / G, on DP rank (i % G) / (micro x
// microbatches), micro-batch and row after that (the training batch's order). The last
// round's missing windows are padding with no loss (target -1).
class ValidationSet {
 public:
  // reads_data: this rank holds the first or the last pipeline stage (only those call fill).
  ValidationSet(data::SampleSource& source, const data::Masker* masker, int windows,
                const BatchLayout& layout, int seq_len, bool reads_data);
  std::int64_t windows() const { return n_; }
  int rounds() const { return rounds_; }
  // Round r's micro-batch mb into tokens/targets, [micro, seq_len].
  void fill(int round, int mb, std::int32_t* tokens, std::int32_t* targets) const;

 private:
  BatchLayout layout_;
  int seq_len_;
  std::int64_t n_ = 0;
  int rounds_ = 0;
  std::vector<std::int32_t> tokens_, targets_;  // this rank's share, [rounds, microbatches, micro, seq_len]
};

struct EvalResult {
  double loss = 0;            // mean target-token loss
  std::int64_t tokens = 0;    // target tokens it covers
  double perplexity() const;  // exp(loss)
};

// Collective over the grid: forwards only, the whole validation set, at the engine's planned
// (full) sequence length; the sequence length in use before is restored after.
EvalResult evaluate(parallel::Engine& engine, comm::RankGrid& grid, const ValidationSet& set);

}  // namespace strata::train
