// Scoring text with a trained model: held-out perplexity and cloze choices.
//
// Perplexity (the training loss's own definition): over windows of seq_len + 1 tokens,
// input w[0..T-1], targets w[1..T],
//   mean loss = (1 / #targets) sum_windows sum_t -log softmax(logits_t)[w[t+1]]
//   perplexity = exp(mean loss)
// computed with the training forward (Stage::forward: the chunk and its loss), batch by batch. For a
// masked LM the same with the corrupted inputs and the chosen positions as targets.
//
// Cloze choice by log-likelihood (causal LM): with context c (token ids) and a choice
// continuation x_1..x_m,
//   log p(x | c) = sum_i log softmax(logits at the position of x_{i-1})[x_i]   (x_0 = last of c)
// The prediction is the choice of highest log-likelihood (the first one on ties). The context
// is prefilled once into the decoder's KV cache and each choice continues from it
// (Decoder::truncate), so k choices cost one context plus k short continuations.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "strata/core/error.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

// log softmax(row)[target] over a row of V logits, in double.
template <class T>
double log_softmax_at(std::span<const T> row, std::int32_t target) {
  STRATA_CHECK(target >= 0 && std::size_t(target) < row.size(), "log_softmax_at: target ", target,
               " outside a row of ", row.size());
  const double mx = double(*std::max_element(row.begin(), row.end()));
  double z = 0;
  for (const T x : row) z += std::exp(double(x) - mx);
  return double(row[std::size_t(target)]) - mx - std::log(z);
}

// Runs `count` sequences through the training forward of `model` (a Stage, or a ForwardModel
// of runtime_model.hpp: anything with forward(tokens, targets) -> LossSum and
// activation_rows()) in batches of `batch`; fill(i, tok, tgt) writes sequence i; the last batch
// is padded with sequences that have no targets. Collective over the model's TP group.
template <class Model, class Fill>
LossSum batched_loss(Model& model, int batch, int seq_len, std::int64_t count, Fill fill) {
  STRATA_CHECK(model.activation_rows() == std::int64_t(batch) * seq_len, "scoring: the model holds ",
               model.activation_rows(), " rows, not batch ", batch, " x seq_len ", seq_len,
               " (sequence parallelism is not supported here)");
  const std::size_t n = std::size_t(batch) * std::size_t(seq_len);
  std::vector<std::int32_t> tokens(n), targets(n);
  LossSum total;
  for (std::int64_t first = 0; first < count; first += batch) {
    for (int b = 0; b < batch; ++b) {
      std::int32_t* tok = tokens.data() + std::size_t(b) * std::size_t(seq_len);
      std::int32_t* tgt = targets.data() + std::size_t(b) * std::size_t(seq_len);
      if (first + b < count) {
        fill(first + b, tok, tgt);
      } else {  // padding: any valid token in, no target
        std::fill_n(tok, seq_len, 0);
        std::fill_n(tgt, seq_len, -1);
      }
    }
    const LossSum l = model.forward(tokens.data(), targets.data());
    total.sum += l.sum;
    total.count += l.count;
  }
  return total;
}

// Summed loss over `count` windows [count, seq_len + 1] with a model built for `batch`
// sequences of `seq_len` (without sequence parallelism); the last batch is padded with
// windows whose targets are ignored. Collective over the model's TP group.
template <class Model>
LossSum window_loss(Model& model, int batch, int seq_len, const std::int32_t* windows, std::int64_t count) {
  return batched_loss(model, batch, seq_len, count,
                      [&](std::int64_t i, std::int32_t* tok, std::int32_t* tgt) {
                        const std::int32_t* w = windows + i * (std::int64_t(seq_len) + 1);
                        std::copy_n(w, seq_len, tok);
                        std::copy_n(w + 1, seq_len, tgt);
                      });
}

// The same over sequences given as inputs and targets [count, seq_len] (target < 0: no loss),
// e.g. masked-LM windows whose targets are the chosen positions only.
template <class Model>
LossSum sequence_loss(Model& model, int batch, int seq_len, const std::int32_t* inputs,
                      const std::int32_t* targets, std::int64_t count) {
  return batched_loss(model, batch, seq_len, count,
                      [&](std::int64_t i, std::int32_t* tok, std::int32_t* tgt) {
                        std::copy_n(inputs + i * seq_len, seq_len, tok);
                        std::copy_n(targets + i * seq_len, seq_len, tgt);
                      });
}

inline double perplexity(const LossSum& l) { return std::exp(l.mean()); }

// Per-document losses (strata eval --per-document). Document d, tokens x_0 .. x_{m-1}, is read
// as the sequence s = [c] x when a context token c >= 0 is given (a dataset's EOS: what the
// training stream shows before every document), else s = x. Every token of s after the first
// is a target, predicted from the tokens before it in its chunk: chunk k has the inputs
// s[kT .. kT+T-1] and the targets s[kT+1 .. kT+T] (T = seq_len; the last chunk padded with
// ignored targets), so a document longer than the context is scored whole, its context
// restarting every T tokens (non-overlapping windows, each token a target once). The chunks of
// consecutive documents fill batches of `batch` rows. Returns each document's summed loss
// (nats) and target count; its score is their ratio.
//   Model: anything with forward_losses(tokens, targets, token_losses) (ForwardModel of
//   runtime_model.hpp) and activation_rows(); read(d, tokens) fills document d's tokens.
// Collective over the model's TP group (every TP rank passes the same documents).
template <class Model, class Read>
std::vector<LossSum> document_losses(Model& model, int batch, int seq_len, std::int64_t count,
                                     std::int32_t context, Read read) {
  STRATA_CHECK(model.activation_rows() == std::int64_t(batch) * seq_len, "scoring: the model holds ",
               model.activation_rows(), " rows, not batch ", batch, " x seq_len ", seq_len,
               " (sequence parallelism is not supported here)");
  const std::size_t T = std::size_t(seq_len), n = std::size_t(batch) * T;
  std::vector<std::int32_t> tokens(n), targets(n), doc_tokens, seq;
  std::vector<float> losses(n);
  std::vector<std::int64_t> row_doc(std::size_t(batch), -1);  // the document of each row
  std::vector<LossSum> out(static_cast<std::size_t>(count));
  int rows = 0;
  auto run = [&] {
    for (std::size_t r = std::size_t(rows); r < std::size_t(batch); ++r) {  // padding rows: no targets
      std::fill_n(tokens.data() + r * T, T, 0);
      std::fill_n(targets.data() + r * T, T, -1);
    }
    model.forward_losses(tokens.data(), targets.data(), losses.data());
    for (std::size_t r = 0; r < std::size_t(rows); ++r) {
      LossSum& l = out[std::size_t(row_doc[r])];
      for (std::size_t t = 0; t < T; ++t)
        if (targets[r * T + t] >= 0) l.sum += double(losses[r * T + t]), ++l.count;
    }
    rows = 0;
  };
  for (std::int64_t d = 0; d < count; ++d) {
    doc_tokens.clear();
    read(d, doc_tokens);
    seq.clear();
    if (context >= 0) seq.push_back(context);
    seq.insert(seq.end(), doc_tokens.begin(), doc_tokens.end());
    for (std::size_t k = 0; k + 1 < seq.size(); k += T) {  // chunk: inputs seq[k, k+T), targets seq[k+1, k+T]
      const std::size_t len = std::min(T, seq.size() - 1 - k);
      std::int32_t* tok = tokens.data() + std::size_t(rows) * T;
      std::int32_t* tgt = targets.data() + std::size_t(rows) * T;
      std::copy_n(seq.data() + k, len, tok);
      std::copy_n(seq.data() + k + 1, len, tgt);
      std::fill(tok + len, tok + T, 0);  // causal: padding after the chunk changes nothing before it
      std::fill(tgt + len, tgt + T, -1);
      row_doc[std::size_t(rows)] = d;
      if (++rows == batch) run();
    }
  }
  if (rows > 0) run();
  return out;
}

// log p(continuation | context) for each choice; the context must not be empty and
// context + the longest choice must fit the decoder's cache. Collective over the TP group.
// Dec: a Decoder<B>, or a DecoderModel (runtime_model.hpp).
template <class Dec>
std::vector<double> choice_log_likelihoods(Dec& decoder, std::span<const std::int32_t> context,
                                           const std::vector<std::vector<std::int32_t>>& choices) {
  using H = typename Dec::H;
  STRATA_CHECK(!context.empty(), "cloze scoring needs a non-empty context (the prompt encodes to no tokens)");
  const std::size_t V = std::size_t(decoder.vocab_size());
  decoder.reset();
  // The distribution of the first choice token: the last row of the context's prefill.
  const H* last = decoder.forward(context, false);
  const std::vector<H> first_row(last, last + V);
  const int ctx = decoder.position();
  std::vector<double> scores;
  for (const auto& choice : choices) {
    STRATA_CHECK(!choice.empty(), "cloze scoring: a choice encodes to no tokens");
    double ll = log_softmax_at(std::span<const H>(first_row), choice[0]);
    if (choice.size() > 1) {
      // Continue from the cached context: rows i predict choice[i + 1].
      decoder.truncate(ctx);
      const H* rows = decoder.forward(std::span<const std::int32_t>(choice.data(), choice.size() - 1), true);
      for (std::size_t i = 0; i + 1 < choice.size(); ++i)
        ll += log_softmax_at(std::span<const H>(rows + i * V, V), choice[i + 1]);
    }
    scores.push_back(ll);
  }
  return scores;
}

// Masked LM (fill the mask; model.attention = bidirectional): for each choice of m tokens the
// sequence context + [mask] x m + right_context is run in one bidirectional pass from position
// 0 and the choice scores sum_i log softmax(logits at position |context| + i)[x_i]. The mask
// token's id comes from the masked-LM objective's tokenizer setup.
template <class Dec>
std::vector<double> masked_choice_log_likelihoods(Dec& decoder, std::span<const std::int32_t> context,
                                                  const std::vector<std::vector<std::int32_t>>& choices,
                                                  std::int32_t mask_id,
                                                  std::span<const std::int32_t> right_context = {}) {
  using H = typename Dec::H;
  const std::size_t V = std::size_t(decoder.vocab_size());
  std::vector<std::int32_t> seq;
  std::vector<double> scores;
  for (const auto& choice : choices) {
    STRATA_CHECK(!choice.empty(), "cloze scoring: a choice encodes to no tokens");
    seq.assign(context.begin(), context.end());
    seq.insert(seq.end(), choice.size(), mask_id);
    seq.insert(seq.end(), right_context.begin(), right_context.end());
    decoder.reset();
    const H* rows = decoder.forward(seq, true);
    double ll = 0;
    for (std::size_t i = 0; i < choice.size(); ++i)
      ll += log_softmax_at(std::span<const H>(rows + (context.size() + i) * V, V), choice[i]);
    scores.push_back(ll);
  }
  return scores;
}

// Index of the largest value (the first one on ties).
int best_choice(const std::vector<double>& scores);

}  // namespace strata::model
