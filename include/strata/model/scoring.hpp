// Scoring text with a trained model: held-out perplexity and cloze choices.
//
// Perplexity (the training loss's own definition): over windows of seq_len + 1 tokens,
// input w[0..T-1], targets w[1..T],
//   mean loss = (1 / #targets) sum_windows sum_t -log softmax(logits_t)[w[t+1]]
//   perplexity = exp(mean loss)
// computed with the training forward (Transformer::forward_chunk + loss), batch by batch. For a
// masked LM the same with the corrupted inputs and the chosen positions as targets.
//
// Cloze choice by log-likelihood (causal LM): with context c (token ids) and a choice
// continuation x_1..x_m,
//   log p(x | c) = sum_i log softmax(logits at the position of x_{i-1})[x_i]   (x_0 = last of c)
// The prediction is the choice of highest log-likelihood (the first one on ties). The context
// is prefilled once into the decoder's KV cache and each choice continues from it
// (Decoder::truncate), so k choices cost one context plus k short continuations.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "strata/model/inference.hpp"
#include "strata/model/transformer.hpp"

namespace strata::model {

// log softmax(row)[target] over a row of V logits, in double.
template <class T>
double log_softmax_at(std::span<const T> row, std::int32_t target);

// Summed loss over `count` windows [count, seq_len + 1] with a model built for `batch`
// sequences of `seq_len` (without sequence parallelism); the last batch is padded with
// windows whose targets are ignored. Collective over the model's TP group.
template <class T>
LossSum window_loss(Transformer<T>& model, int batch, int seq_len, const std::int32_t* windows,
                    std::int64_t count);

// The same over sequences given as inputs and targets [count, seq_len] (target < 0: no loss),
// e.g. masked-LM windows whose targets are the chosen positions only.
template <class T>
LossSum sequence_loss(Transformer<T>& model, int batch, int seq_len, const std::int32_t* inputs,
                      const std::int32_t* targets, std::int64_t count);

inline double perplexity(const LossSum& l) { return std::exp(l.mean()); }

// log p(continuation | context) for each choice; the context must not be empty and
// context + the longest choice must fit the decoder's cache. Collective over the TP group.
template <class T>
std::vector<double> choice_log_likelihoods(Decoder<T>& decoder, std::span<const std::int32_t> context,
                                           const std::vector<std::vector<std::int32_t>>& choices);

// Masked LM (fill the mask; model.attention = bidirectional): for each choice of m tokens the
// sequence context + [mask] x m + right_context is run in one bidirectional pass from position
// 0 and the choice scores sum_i log softmax(logits at position |context| + i)[x_i]. The mask
// token's id comes from the masked-LM objective's tokenizer setup.
template <class T>
std::vector<double> masked_choice_log_likelihoods(Decoder<T>& decoder, std::span<const std::int32_t> context,
                                                  const std::vector<std::vector<std::int32_t>>& choices,
                                                  std::int32_t mask_id,
                                                  std::span<const std::int32_t> right_context = {});

// Index of the largest value (the first one on ties).
int best_choice(const std::vector<double>& scores);

}  // namespace strata::model
