// Perplexity over windows and cloze choice scoring; see scoring.hpp.
#include "strata/model/scoring.hpp"

#include <algorithm>
#include <cmath>

#include "strata/core/error.hpp"

namespace strata::model {

template <class T>
double log_softmax_at(std::span<const T> row, std::int32_t target) {
  STRATA_CHECK(target >= 0 && std::size_t(target) < row.size(), "log_softmax_at: target ", target,
               " outside a row of ", row.size());
  const double mx = double(*std::max_element(row.begin(), row.end()));
  double z = 0;
  for (const T x : row) z += std::exp(double(x) - mx);
  return double(row[std::size_t(target)]) - mx - std::log(z);
}

namespace {

// Runs `count` sequences through the training forward in batches of `batch`; fill(i, tok, tgt)
// writes sequence i; the last batch is padded with sequences that have no targets.
template <class T, class Fill>
LossSum batched_loss(Transformer<T>& model, int batch, int seq_len, std::int64_t count, Fill fill) {
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
    model.forward_chunk(0, tokens.data(), nullptr);
    const LossSum l = model.loss(0, targets.data(), T(0), false);
    total.sum += l.sum;
    total.count += l.count;
  }
  return total;
}

}  // namespace

template <class T>
LossSum window_loss(Transformer<T>& model, int batch, int seq_len, const std::int32_t* windows,
                    std::int64_t count) {
  return batched_loss(model, batch, seq_len, count, [&](std::int64_t i, std::int32_t* tok, std::int32_t* tgt) {
    const std::int32_t* w = windows + i * (std::int64_t(seq_len) + 1);
    std::copy_n(w, seq_len, tok);
    std::copy_n(w + 1, seq_len, tgt);
  });
}

template <class T>
LossSum sequence_loss(Transformer<T>& model, int batch, int seq_len, const std::int32_t* inputs,
                      const std::int32_t* targets, std::int64_t count) {
  return batched_loss(model, batch, seq_len, count, [&](std::int64_t i, std::int32_t* tok, std::int32_t* tgt) {
    std::copy_n(inputs + i * seq_len, seq_len, tok);
    std::copy_n(targets + i * seq_len, seq_len, tgt);
  });
}

template <class T>
std::vector<double> choice_log_likelihoods(Decoder<T>& decoder, std::span<const std::int32_t> context,
                                           const std::vector<std::vector<std::int32_t>>& choices) {
  STRATA_CHECK(!context.empty(), "cloze scoring needs a non-empty context (the prompt encodes to no tokens)");
  const std::size_t V = std::size_t(decoder.vocab_size());
  decoder.reset();
  // The distribution of the first choice token: the last row of the context's prefill.
  const T* last = decoder.forward(context, false);
  const std::vector<T> first_row(last, last + V);
  const int ctx = decoder.position();
  std::vector<double> scores;
  for (const auto& choice : choices) {
    STRATA_CHECK(!choice.empty(), "cloze scoring: a choice encodes to no tokens");
    double ll = log_softmax_at(std::span<const T>(first_row), choice[0]);
    if (choice.size() > 1) {
      // Continue from the cached context: rows i predict choice[i + 1].
      decoder.truncate(ctx);
      const T* rows = decoder.forward(std::span<const std::int32_t>(choice.data(), choice.size() - 1), true);
      for (std::size_t i = 0; i + 1 < choice.size(); ++i)
        ll += log_softmax_at(std::span<const T>(rows + i * V, V), choice[i + 1]);
    }
    scores.push_back(ll);
  }
  return scores;
}

template <class T>
std::vector<double> masked_choice_log_likelihoods(Decoder<T>& decoder, std::span<const std::int32_t> context,
                                                  const std::vector<std::vector<std::int32_t>>& choices,
                                                  std::int32_t mask_id, std::span<const std::int32_t> right_context) {
  const std::size_t V = std::size_t(decoder.vocab_size());
  std::vector<std::int32_t> seq;
  std::vector<double> scores;
  for (const auto& choice : choices) {
    STRATA_CHECK(!choice.empty(), "cloze scoring: a choice encodes to no tokens");
    seq.assign(context.begin(), context.end());
    seq.insert(seq.end(), choice.size(), mask_id);
    seq.insert(seq.end(), right_context.begin(), right_context.end());
    decoder.reset();
    const T* rows = decoder.forward(seq, true);
    double ll = 0;
    for (std::size_t i = 0; i < choice.size(); ++i)
      ll += log_softmax_at(std::span<const T>(rows + (context.size() + i) * V, V), choice[i]);
    scores.push_back(ll);
  }
  return scores;
}

int best_choice(const std::vector<double>& scores) {
  STRATA_CHECK(!scores.empty(), "best_choice of no scores");
  return int(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

#define STRATA_INSTANTIATE(T)                                                                      \
  template double log_softmax_at<T>(std::span<const T>, std::int32_t);                             \
  template LossSum window_loss<T>(Transformer<T>&, int, int, const std::int32_t*, std::int64_t);   \
  template LossSum sequence_loss<T>(Transformer<T>&, int, int, const std::int32_t*, const std::int32_t*, \
                                    std::int64_t);                                                 \
  template std::vector<double> choice_log_likelihoods<T>(Decoder<T>&, std::span<const std::int32_t>, \
                                                         const std::vector<std::vector<std::int32_t>>&); \
  template std::vector<double> masked_choice_log_likelihoods<T>(                                   \
      Decoder<T>&, std::span<const std::int32_t>, const std::vector<std::vector<std::int32_t>>&,   \
      std::int32_t, std::span<const std::int32_t>);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::model
