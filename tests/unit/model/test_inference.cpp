// Inference: the KV-cached decoder against the training forward, token choice (greedy,
// temperature, top-k, top-p), cloze scoring and perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "../../tiny_models.hpp"
#include "strata/core/rng.hpp"
#include "strata/model/sampling.hpp"
#include "strata/model/scoring.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;
using config::ModelConfig;

namespace {

ModelConfig gpt_tiny() {
  ModelConfig c = test::gpt_tiny();
  c.max_seq_len = 12;
  c.init_std = 0.3;  // large weights: logits far from uniform, so the argmax is well separated
  return c;
}

ModelConfig llama_tiny() {  // GQA: two query heads per KV head
  ModelConfig c = test::llama_style(gpt_tiny(), 2);
  c.name = "llama_tiny";
  return c;
}

// GPT-2- and LLaMA-style, each with and without biases (SwiGLU with biases: gate, up and down).
std::vector<ModelConfig> every_kind() {
  ModelConfig gpt_no_bias = gpt_tiny(), llama_bias = llama_tiny();
  gpt_no_bias.bias = false;
  gpt_no_bias.name = "gpt_tiny_no_bias";
  llama_bias.bias = true;
  llama_bias.name = "llama_tiny_bias";
  return {gpt_tiny(), gpt_no_bias, llama_tiny(), llama_bias};
}

// Parameters drawn as in training, with the norm gains and biases perturbed off 1 and 0.
template <class T>
void init(model::Transformer<T>& m, std::uint64_t seed) {
  m.init_parameters(seed);
  const core::CounterRng rng(seed, "test.perturb");
  auto p = m.params();
  for (std::size_t i = 0; i < p.size(); ++i) p[i] += T(0.05 * rng.normal(i));
}

template <class T>
std::vector<T> full_logits(model::Transformer<T>& t, const std::vector<std::int32_t>& seq, int V) {
  const std::vector<std::int32_t> no_targets(seq.size(), -1);
  t.forward_chunk(0, seq.data(), nullptr);
  t.loss(0, no_targets.data(), T(0), false);
  return std::vector<T>(t.logits(), t.logits() + seq.size() * std::size_t(V));
}

}  // namespace

// Greedy decoding with the KV cache (prefill 3 tokens, then one token per call) picks, at every
// step, the argmax of the training forward's logits at that position, and the cached logits
// equal the full forward's to double rounding. Causal, so one full forward over the final
// sequence gives every step's logits. Every model kind the config accepts, biases on and off.
TEST(Decoder, GreedyWithKvCacheEqualsArgmaxOfTrainingForwardAtEveryStep) {
  for (const ModelConfig& cfg : every_kind()) {
    const int T = cfg.max_seq_len, V = cfg.vocab_size;
    model::Transformer<double> train(cfg, 1, T);
    init(train, 5);
    model::CpuDecoder<double> dec(cfg);
    ASSERT_EQ(dec.params().size(), train.params().size());
    std::copy(train.params().begin(), train.params().end(), dec.params().begin());

    std::vector<std::int32_t> seq = {3, 17, 8};
    std::vector<std::vector<double>> step_logits;
    const double* lg = dec.forward(seq);
    while (int(seq.size()) < T) {
      step_logits.emplace_back(lg, lg + V);
      seq.push_back(model::argmax(std::span<const double>(lg, std::size_t(V))));
      if (int(seq.size()) < T) lg = dec.forward(std::span<const std::int32_t>(&seq.back(), 1));
    }
    EXPECT_EQ(dec.position(), T - 1);
    const auto full = full_logits(train, seq, V);
    for (std::size_t s = 0; s < step_logits.size(); ++s) {
      const std::size_t p = 2 + s;  // the position whose logits chose seq[p + 1]
      std::span<const double> row(full.data() + p * std::size_t(V), std::size_t(V));
      EXPECT_EQ(model::argmax(row), seq[p + 1]) << cfg.name << " step " << s;
      for (int v = 0; v < V; ++v)
        ASSERT_NEAR(step_logits[s][std::size_t(v)], row[std::size_t(v)], 1e-10) << cfg.name << " step " << s;
    }
    // Every row of one prefill call equals the full forward too.
    dec.reset();
    const double* rows = dec.forward(seq, true);
    for (std::size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(rows[i], full[i], 1e-10) << cfg.name;
  }
}

TEST(Decoder, FloatAgreesWithDoubleAndTruncateReplaysTheSameLogits) {
  const ModelConfig cfg = llama_tiny();
  const int V = cfg.vocab_size;
  model::Transformer<double> train(cfg, 1, cfg.max_seq_len);
  init(train, 9);
  model::CpuDecoder<double> dd(cfg);
  model::CpuDecoder<float> df(cfg);
  std::copy(train.params().begin(), train.params().end(), dd.params().begin());
  for (std::size_t i = 0; i < df.params().size(); ++i) df.params()[i] = float(train.params()[i]);
  const std::vector<std::int32_t> a = {1, 2, 3, 4, 5}, b = {6, 7};
  dd.forward(a);
  df.forward(a);
  const double* ld = dd.forward(b, true);
  std::vector<double> first(ld, ld + 2 * V);
  dd.truncate(5);
  ld = dd.forward(b, true);
  for (int i = 0; i < 2 * V; ++i) EXPECT_EQ(ld[i], first[std::size_t(i)]);
  const float* lf = df.forward(b, true);
  // float rounding through 2 layers of O(1) activations with O(1) logits: ~1e-5
  for (int i = 0; i < 2 * V; ++i) EXPECT_NEAR(double(lf[i]), first[std::size_t(i)], 1e-4);
  EXPECT_THROW(dd.truncate(8), std::runtime_error);
  dd.reset();
  const std::vector<std::int32_t> too_long(std::size_t(cfg.max_seq_len + 1), 1);
  EXPECT_THROW(dd.forward(too_long), std::runtime_error);
  const std::vector<std::int32_t> bad = {int(V)};
  EXPECT_THROW(dd.forward(bad), std::runtime_error);
}

// Bidirectional attention (the masked-LM model): one call over the whole sequence equals the
// training forward at every position.
TEST(Decoder, BidirectionalWholeSequenceEqualsTrainingForward) {
  for (ModelConfig cfg : every_kind()) {
    cfg.attention = config::AttentionKind::bidirectional;
    model::Transformer<double> train(cfg, 1, 7);
    init(train, 4);
    model::CpuDecoder<double> dec(cfg);
    std::copy(train.params().begin(), train.params().end(), dec.params().begin());
    const std::vector<std::int32_t> seq = {0, 9, 22, 4, 4, 13, 1};
    const auto full = full_logits(train, seq, cfg.vocab_size);
    const double* rows = dec.forward(seq, true);
    for (std::size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(rows[i], full[i], 1e-10) << cfg.name;
  }
}

// ---- token choice ------------------------------------------------------------------------

TEST(Sampling, GreedyAndTemperatureZeroPickTheFirstMaximum) {
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(model::argmax(std::span<const float>(l)), 1);
  model::Sampler greedy({.greedy = true}, 4), cold({.temperature = 0.0}, 4);
  for (std::uint64_t s = 0; s < 10; ++s) {
    EXPECT_EQ(greedy.next(std::span<const float>(l), s), 1);
    EXPECT_EQ(cold.next(std::span<const float>(l), s), 1);
  }
}

TEST(Sampling, TemperatureTopKAndTopPFilterHandMadeLogits) {
  // log-probabilities of [0.1, 0.5, 0.3, 0.1]: softmax gives them back exactly.
  const std::vector<double> l = {std::log(0.1), std::log(0.5), std::log(0.3), std::log(0.1)};
  const std::span<const double> row(l);
  auto dist = [&](model::SamplingOptions o) {
    model::Sampler s(o, 4);
    const auto d = s.distribution(row);
    return std::vector<double>(d.begin(), d.end());
  };
  auto expect_dist = [](const std::vector<double>& got, const std::vector<double>& want, const char* what) {
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-12) << what << " token " << i;
  };
  expect_dist(dist({}), {0.1, 0.5, 0.3, 0.1}, "plain");
  // temperature 2: p ~ sqrt(p) = [0.316, 0.707, 0.548, 0.316] / 1.887
  {
    const double z = 2 * std::sqrt(0.1) + std::sqrt(0.5) + std::sqrt(0.3);
    expect_dist(dist({.temperature = 2.0}),
                {std::sqrt(0.1) / z, std::sqrt(0.5) / z, std::sqrt(0.3) / z, std::sqrt(0.1) / z},
                "temperature 2");
  }
  expect_dist(dist({.top_k = 2}), {0, 0.5 / 0.8, 0.3 / 0.8, 0}, "top-k 2");
  expect_dist(dist({.top_k = 1}), {0, 1, 0, 0}, "top-k 1");
  expect_dist(dist({.top_p = 0.5}), {0, 1, 0, 0}, "top-p 0.5: 0.5 reaches it");
  expect_dist(dist({.top_p = 0.6}), {0, 0.5 / 0.8, 0.3 / 0.8, 0}, "top-p 0.6");
  // tie at 0.1: the lower id is kept first
  expect_dist(dist({.top_p = 0.85}), {0.1 / 0.9, 0.5 / 0.9, 0.3 / 0.9, 0}, "top-p 0.85");
  // top-p applies to the renormalised top-k set: of {0.625, 0.375}, 0.6 needs only the first
  expect_dist(dist({.top_k = 2, .top_p = 0.6}), {0, 1, 0, 0}, "top-k 2 then top-p 0.6");
  EXPECT_THROW(model::Sampler({.top_p = 0.0}, 4), std::runtime_error);
  EXPECT_THROW(model::Sampler({.top_p = 1.5}, 4), std::runtime_error);
  EXPECT_THROW(model::Sampler({.top_k = -1}, 4), std::runtime_error);
  EXPECT_THROW(model::Sampler({.temperature = -1}, 4), std::runtime_error);
}

TEST(Sampling, DrawsFollowTheFilteredDistributionAndRepeatWithTheSeed) {
  const std::vector<float> l = {std::log(0.1f), std::log(0.5f), std::log(0.3f), std::log(0.1f)};
  const std::span<const float> row(l);
  model::Sampler s({.top_k = 3, .seed = 42}, 4), again({.top_k = 3, .seed = 42}, 4),
      other({.top_k = 3, .seed = 43}, 4);
  const int n = 20000;
  std::vector<int> count(4, 0);
  int same = 0, differ = 0;
  for (int i = 0; i < n; ++i) {
    const int t = s.next(row, std::uint64_t(i));
    ++count[std::size_t(t)];
    same += t == again.next(row, std::uint64_t(i));
    differ += t != other.next(row, std::uint64_t(i));
  }
  EXPECT_EQ(same, n);
  EXPECT_GT(differ, n / 4);
  // kept: {1, 2, 0} with 0.5, 0.3, 0.1 of 0.9; binomial sd at n = 20000 is <= 0.0036: 0.015 is > 4 sd
  EXPECT_EQ(count[3], 0);
  EXPECT_NEAR(count[1] / double(n), 0.5 / 0.9, 0.015);
  EXPECT_NEAR(count[2] / double(n), 0.3 / 0.9, 0.015);
  EXPECT_NEAR(count[0] / double(n), 0.1 / 0.9, 0.015);
}

// ---- cloze scoring -----------------------------------------------------------------------

// A hand-made bigram model: one layer whose attention and MLP outputs are zero (Wo = Wdown = 0),
// one-hot embeddings, and RMSNorm (gain 1, eps ~ 0) mapping e_i to 2 e_i in width 4, so the
// logits after token i are 2 * column i of the output layer. Column i = log P(. | i) / 2 makes
// the model's next-token distribution exactly the table P below, so every choice's
// log-likelihood is a hand-computable product of table entries.
TEST(Scoring, ClozeLogLikelihoodsOfAHandMadeBigramModel) {
  ModelConfig cfg;
  cfg.num_layers = 1;
  cfg.d_model = 4;
  cfg.num_heads = 1;
  cfg.ffn_hidden = 4;
  cfg.vocab_size = 4;
  cfg.max_seq_len = 8;
  cfg.norm = config::NormKind::rmsnorm;
  cfg.mlp = config::MlpKind::swiglu;
  cfg.positions = config::PositionKind::rope;
  cfg.tied_embeddings = false;
  cfg.bias = false;
  cfg.norm_eps = 1e-300;
  const double P[4][4] = {{0.25, 0.25, 0.25, 0.25},  // P(next | 0)
                          {0.05, 0.05, 0.5, 0.4},    // P(next | 1)
                          {0.7, 0.1, 0.1, 0.1},      // P(next | 2)
                          {0.02, 0.03, 0.9, 0.05}};  // P(next | 3)
  model::CpuDecoder<double> dec(cfg);
  std::fill(dec.params().begin(), dec.params().end(), 0.0);
  auto set = [&](const char* name, int r, int c, double v) {
    const model::ParamInfo& p = dec.table().get(name);
    dec.params()[std::size_t(p.offset + r * p.shape[1] + c)] = v;
  };
  auto ones = [&](const char* name) {
    const model::ParamInfo& p = dec.table().get(name);
    for (std::int64_t i = 0; i < p.numel; ++i) dec.params()[std::size_t(p.offset + i)] = 1.0;
  };
  ones("layers.0.attn_norm.weight");
  ones("layers.0.mlp_norm.weight");
  ones("final_norm.weight");
  for (int i = 0; i < 4; ++i) {
    set("embed.wte", i, i, 1.0);
    for (int v = 0; v < 4; ++v) set("lm_head.weight", v, i, std::log(P[i][v]) / 2);
  }
  const std::vector<std::int32_t> context = {0, 1};
  const std::vector<std::vector<std::int32_t>> choices = {{2}, {3, 2}, {3}, {0, 3, 2}};
  const auto ll = model::choice_log_likelihoods(dec, context, choices);
  ASSERT_EQ(ll.size(), 4u);
  EXPECT_NEAR(ll[0], std::log(0.5), 1e-12);                // P(2|1)
  EXPECT_NEAR(ll[1], std::log(0.4 * 0.9), 1e-12);          // P(3|1) P(2|3)
  EXPECT_NEAR(ll[2], std::log(0.4), 1e-12);                // P(3|1)
  EXPECT_NEAR(ll[3], std::log(0.05 * 0.25 * 0.9), 1e-12);  // P(0|1) P(3|0) P(2|3)
  EXPECT_EQ(model::best_choice(ll), 0);
  // A longer context ending in 3 prefers the choice [2]: P(2|3) = 0.9.
  const std::vector<std::int32_t> context3 = {1, 3};
  const auto ll3 = model::choice_log_likelihoods(dec, context3, {{0}, {1}, {2}, {3}});
  EXPECT_EQ(model::best_choice(ll3), 2);
  EXPECT_NEAR(ll3[2], std::log(0.9), 1e-12);
  EXPECT_THROW(model::choice_log_likelihoods(dec, std::span<const std::int32_t>(), choices),
               std::runtime_error);
}

// On a random model the cached scoring equals the sum of log-softmax entries of one training
// forward over context + choice.
TEST(Scoring, ClozeLogLikelihoodEqualsTrainingForwardSum) {
  const ModelConfig cfg = llama_tiny();
  const int V = cfg.vocab_size;
  const std::vector<std::int32_t> context = {4, 11, 2, 19};
  const std::vector<std::vector<std::int32_t>> choices = {{7}, {7, 1, 15}, {22, 0}};
  model::CpuDecoder<double> dec(cfg);
  model::Transformer<double> seed_model(cfg, 1, 1);
  init(seed_model, 21);
  std::copy(seed_model.params().begin(), seed_model.params().end(), dec.params().begin());
  const auto ll = model::choice_log_likelihoods(dec, context, choices);
  for (std::size_t c = 0; c < choices.size(); ++c) {
    std::vector<std::int32_t> seq = context;
    seq.insert(seq.end(), choices[c].begin(), choices[c].end());
    model::Transformer<double> t(cfg, 1, int(seq.size()));
    std::copy(seed_model.params().begin(), seed_model.params().end(), t.params().begin());
    const auto full = full_logits(t, seq, V);
    double want = 0;
    for (std::size_t i = context.size(); i < seq.size(); ++i)
      want += model::log_softmax_at(
          std::span<const double>(full.data() + (i - 1) * std::size_t(V), std::size_t(V)), seq[i]);
    EXPECT_NEAR(ll[c], want, 1e-10) << "choice " << c;
  }
}

// Masked-LM scoring: each choice's tokens replaced by mask tokens, one bidirectional pass, the
// log-probabilities of the choice's tokens at the masked positions — checked against the
// training forward over the masked sequence.
TEST(Scoring, MaskedChoiceLogLikelihoodSumsLogProbsAtTheMaskedPositions) {
  ModelConfig cfg = llama_tiny();
  cfg.attention = config::AttentionKind::bidirectional;
  const int V = cfg.vocab_size;
  const std::int32_t mask = 22;
  const std::vector<std::int32_t> left = {3, 9, 14}, right = {5};
  const std::vector<std::vector<std::int32_t>> choices = {{7}, {1, 15}};
  model::CpuDecoder<double> dec(cfg);
  model::Transformer<double> seed_model(cfg, 1, 1);
  init(seed_model, 31);
  std::copy(seed_model.params().begin(), seed_model.params().end(), dec.params().begin());
  const auto ll = model::masked_choice_log_likelihoods(dec, left, choices, mask, right);
  for (std::size_t c = 0; c < choices.size(); ++c) {
    std::vector<std::int32_t> seq = left;
    seq.insert(seq.end(), choices[c].size(), mask);
    seq.insert(seq.end(), right.begin(), right.end());
    model::Transformer<double> t(cfg, 1, int(seq.size()));
    std::copy(seed_model.params().begin(), seed_model.params().end(), t.params().begin());
    const auto full = full_logits(t, seq, V);
    double want = 0;
    for (std::size_t i = 0; i < choices[c].size(); ++i)
      want += model::log_softmax_at(
          std::span<const double>(full.data() + (left.size() + i) * std::size_t(V), std::size_t(V)),
          choices[c][i]);
    EXPECT_NEAR(ll[c], want, 1e-10) << "choice " << c;
  }
}

// ---- perplexity --------------------------------------------------------------------------

// Perplexity over a fixed set of 5 windows (batches of 2: the last one padded) is exp of the
// mean token loss, the loss computed independently from the decoder's log-softmax; the same
// with explicit targets at a few positions of a bidirectional model (masked LM).
TEST(Scoring, PerplexityIsExpOfMeanLossOnAFixedSet) {
  const ModelConfig cfg = gpt_tiny();
  const int T = 6, n = 5, V = cfg.vocab_size;
  std::vector<std::int32_t> windows;
  const core::CounterRng rng(3, "test.windows");
  for (int i = 0; i < n * (T + 1); ++i)
    windows.push_back(std::int32_t(rng.below(std::uint64_t(V), std::uint64_t(i))));
  model::Transformer<double> m2(cfg, 2, T);
  init(m2, 8);
  const model::LossSum l2 = model::window_loss(m2, 2, T, windows.data(), n);
  model::Transformer<double> m1(cfg, 1, T);
  std::copy(m2.params().begin(), m2.params().end(), m1.params().begin());
  const model::LossSum l1 = model::window_loss(m1, 1, T, windows.data(), n);
  EXPECT_EQ(l2.count, n * T);
  EXPECT_EQ(l1.count, n * T);
  EXPECT_NEAR(l2.sum, l1.sum, 1e-10 * l1.sum);

  model::CpuDecoder<double> dec(cfg);
  std::copy(m2.params().begin(), m2.params().end(), dec.params().begin());
  double nll = 0;
  for (int w = 0; w < n; ++w) {
    const std::int32_t* win = windows.data() + w * (T + 1);
    dec.reset();
    const double* rows = dec.forward(std::span<const std::int32_t>(win, std::size_t(T)), true);
    for (int t = 0; t < T; ++t)
      nll -= model::log_softmax_at(std::span<const double>(rows + t * V, std::size_t(V)), win[t + 1]);
  }
  EXPECT_NEAR(l2.sum, nll, 1e-10 * nll);
  EXPECT_NEAR(model::perplexity(l2), std::exp(nll / (n * T)), 1e-10 * std::exp(nll / (n * T)));
  // sequence_loss with explicit inputs and targets (the masked-LM form): a bidirectional model,
  // loss only at some positions, equal to the decoder's log-softmax at those positions.
  ModelConfig bcfg = cfg;
  bcfg.attention = config::AttentionKind::bidirectional;
  model::Transformer<double> bm(bcfg, 2, T);
  init(bm, 12);
  model::CpuDecoder<double> bdec(bcfg);
  std::copy(bm.params().begin(), bm.params().end(), bdec.params().begin());
  std::vector<std::int32_t> inputs, targets;
  for (int w = 0; w < n; ++w)
    for (int t = 0; t < T; ++t) {
      inputs.push_back(windows[std::size_t(w * (T + 1) + t)]);
      targets.push_back((w + t) % 3 == 0 ? windows[std::size_t(w * (T + 1) + t + 1)] : -1);
    }
  const model::LossSum ls = model::sequence_loss(bm, 2, T, inputs.data(), targets.data(), n);
  double mnll = 0;
  std::int64_t mcount = 0;
  for (int w = 0; w < n; ++w) {
    bdec.reset();
    const double* rows =
        bdec.forward(std::span<const std::int32_t>(inputs.data() + w * T, std::size_t(T)), true);
    for (int t = 0; t < T; ++t)
      if (const std::int32_t y = targets[std::size_t(w * T + t)]; y >= 0) {
        mnll -= model::log_softmax_at(std::span<const double>(rows + t * V, std::size_t(V)), y);
        ++mcount;
      }
  }
  EXPECT_EQ(ls.count, mcount);
  EXPECT_NEAR(ls.sum, mnll, 1e-10 * mnll);
  // A model that always predicts uniformly has perplexity V: zero output layer.
  model::Transformer<double> flat(cfg, 2, T);
  flat.init_parameters(1);
  std::fill(flat.params().begin(), flat.params().end(), 0.0);
  EXPECT_NEAR(model::perplexity(model::window_loss(flat, 2, T, windows.data(), n)), double(V), 1e-9);
}

// ---- per-document scores ------------------------------------------------------------------

namespace {

// document_losses' model interface over a Stage (what ForwardModel::forward_losses does).
struct StageLosses {
  model::Transformer<double>& stage;
  std::int64_t activation_rows() const { return stage.activation_rows(); }
  model::LossSum forward_losses(const std::int32_t* tokens, const std::int32_t* targets,
                                float* token_losses) {
    std::vector<double> losses(std::size_t(stage.activation_rows()));
    stage.forward_chunk(0, tokens, nullptr);
    stage.loss_into(0, targets, 0.0, false, losses.data());
    model::LossSum sum;
    for (std::size_t i = 0; i < losses.size(); ++i) {
      token_losses[i] = targets[i] < 0 ? 0.0f : float(losses[i]);
      if (targets[i] >= 0) sum.sum += losses[i], ++sum.count;
    }
    return sum;
  }
};

}  // namespace

// Documents of 1 .. 2T+3 tokens, with the EOS before each one and without, batched two chunks
// per forward (chunks of different documents side by side, the last batch padded): each
// document's loss is the decoder's -log softmax over its chunks, each chunk run from position 0.
// (The losses come back as float: the tolerance is float's.)
TEST(Scoring, DocumentLossesEqualTheDecoderChunkByChunk) {
  const ModelConfig cfg = gpt_tiny();
  const int T = 5, V = cfg.vocab_size;
  const std::int32_t eos = V - 1;
  const core::CounterRng rng(4, "test.documents");
  std::vector<std::vector<std::int32_t>> docs;
  std::uint64_t k = 0;
  for (const int len : {1, 3, 5, 6, 13, 2, 10}) {
    docs.emplace_back();
    for (int i = 0; i < len; ++i) docs.back().push_back(std::int32_t(rng.below(std::uint64_t(V - 1), k++)));
  }
  model::Transformer<double> m(cfg, 2, T);
  init(m, 21);
  model::CpuDecoder<double> dec(cfg);
  std::copy(m.params().begin(), m.params().end(), dec.params().begin());
  StageLosses net{m};
  for (const std::int32_t context : {eos, std::int32_t(-1)}) {
    const std::vector<model::LossSum> got = model::document_losses(
        net, 2, T, std::int64_t(docs.size()), context,
        [&](std::int64_t d, std::vector<std::int32_t>& out) { out = docs[std::size_t(d)]; });
    ASSERT_EQ(got.size(), docs.size());
    for (std::size_t d = 0; d < docs.size(); ++d) {
      std::vector<std::int32_t> seq;
      if (context >= 0) seq.push_back(context);
      seq.insert(seq.end(), docs[d].begin(), docs[d].end());
      double nll = 0;
      std::int64_t count = 0;
      for (std::size_t c = 0; c + 1 < seq.size(); c += std::size_t(T)) {
        const std::size_t len = std::min(std::size_t(T), seq.size() - 1 - c);
        dec.reset();
        const double* rows = dec.forward(std::span<const std::int32_t>(seq.data() + c, len), true);
        for (std::size_t t = 0; t < len; ++t, ++count)
          nll -= model::log_softmax_at(std::span<const double>(rows + t * std::size_t(V), std::size_t(V)),
                                       seq[c + t + 1]);
      }
      EXPECT_EQ(got[d].count, count) << "document " << d << ", context " << context;
      EXPECT_NEAR(got[d].sum, nll, 1e-6 * (1 + nll)) << "document " << d << ", context " << context;
    }
  }
}
