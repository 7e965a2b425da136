// Masked-LM corruption (masking.hpp): BERT's statistics, a pure function of (seed, sample,
// position), the same masks for every DP split and a resumed loader, and the [MASK] id.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "data_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/masking.hpp"

using namespace strata;

namespace {

data::MaskingOptions bert(std::int32_t mask_id = 1000, std::int32_t vocab = 1000) {
  data::MaskingOptions o;  // 15% chosen; 80% [MASK], 10% random, 10% unchanged
  o.mask_id = mask_id;
  o.random_vocab = vocab;
  return o;
}

std::vector<std::int32_t> window_of(std::uint64_t sample, int len) {
  std::vector<std::int32_t> w(static_cast<std::size_t>(len));
  for (int t = 0; t < len; ++t) w[std::size_t(t)] = std::int32_t((sample * 31 + std::uint64_t(t) * 7) % 1000);
  return w;
}

}  // namespace

TEST(Masking, FollowsBertsFractions) {
  // 2000 samples x 64 positions = 128,000 draws. Binomial standard deviations: chosen
  // sqrt(.15 .85 / 128000) = 0.001; of the ~19,200 chosen, [MASK] sqrt(.8 .2 / 19200) = 0.003
  // and random/unchanged 0.002. 5 sigma bounds: a fair implementation fails once in ~10^6 runs
  // (the draws are deterministic anyway), a wrong fraction by 0.02 fails always.
  const data::Masker m(bert(), 42, data::MaskStream::train);
  const int T = 64, S = 2000;
  std::vector<std::int32_t> in(T), tg(T);
  std::int64_t positions = 0, chosen = 0, masked = 0, random = 0, unchanged = 0;
  double random_sum = 0;
  for (std::uint64_t s = 0; s < std::uint64_t(S); ++s) {
    const auto w = window_of(s, T);
    m.apply(s, w.data(), T, in.data(), tg.data());
    for (int t = 0; t < T; ++t) {
      ++positions;
      if (tg[t] < 0) {
        ASSERT_EQ(in[t], w[t]) << "a position that is not chosen keeps its token";
        continue;
      }
      ++chosen;
      ASSERT_EQ(tg[t], w[t]) << "the target is the original token";
      ASSERT_EQ(m.chosen(s, t), true);
      if (in[t] == 1000)
        ++masked;
      else if (in[t] != w[t])
        ++random, random_sum += in[t];
      else
        ++unchanged;  // (or a random draw of the same token: 1 in 1000 of the random ones)
      ASSERT_GE(in[t], 0);
      ASSERT_LE(in[t], 1000);
    }
  }
  const double c = double(chosen);
  EXPECT_NEAR(c / double(positions), 0.15, 5 * 0.001);
  EXPECT_NEAR(double(masked) / c, 0.8, 5 * 0.003);
  EXPECT_NEAR(double(random) / c, 0.1, 5 * 0.0022);
  EXPECT_NEAR(double(unchanged) / c, 0.1, 5 * 0.0022);
  // Random tokens are uniform over [0, 1000): mean 499.5, sd of the mean 289 / sqrt(~1900) = 6.6.
  EXPECT_NEAR(random_sum / double(random), 499.5, 5 * 6.6);
}

TEST(Masking, ConfigurableFractions) {
  data::MaskingOptions o = bert();
  o.probability = 0.5;
  o.mask_fraction = 0;
  o.random_fraction = 0;  // chosen, never corrupted: inputs always equal the window
  const data::Masker m(o, 1, data::MaskStream::train);
  std::vector<std::int32_t> in(256), tg(256);
  const auto w = window_of(3, 256);
  m.apply(3, w.data(), 256, in.data(), tg.data());
  EXPECT_EQ(in, w);
  const auto n = std::count_if(tg.begin(), tg.end(), [](std::int32_t x) { return x >= 0; });
  EXPECT_NEAR(double(n) / 256, 0.5, 5 * std::sqrt(0.25 / 256));
}

TEST(Masking, IsAPureFunctionOfSeedSampleAndPosition) {
  const data::Masker a(bert(), 7, data::MaskStream::train), b(bert(), 7, data::MaskStream::train);
  const data::Masker other_seed(bert(), 8, data::MaskStream::train),
      valid(bert(), 7, data::MaskStream::valid);
  const auto w = window_of(5, 64);
  std::vector<std::int32_t> in1(64), tg1(64), in2(64), tg2(64);
  a.apply(5, w.data(), 64, in1.data(), tg1.data());
  b.apply(5, w.data(), 64, in2.data(), tg2.data());
  EXPECT_EQ(in1, in2);
  EXPECT_EQ(tg1, tg2);
  // A shorter sequence (sequence-length warm-up) gets the first positions' masks.
  std::vector<std::int32_t> in3(16), tg3(16);
  a.apply(5, w.data(), 16, in3.data(), tg3.data());
  EXPECT_TRUE(std::equal(in3.begin(), in3.end(), in1.begin()));
  EXPECT_TRUE(std::equal(tg3.begin(), tg3.end(), tg1.begin()));
  // Another sample, seed or stream draws other positions.
  auto chosen_set = [&](const data::Masker& m, std::uint64_t s) {
    std::vector<bool> c;
    for (int t = 0; t < 256; ++t) c.push_back(m.chosen(s, t));
    return c;
  };
  EXPECT_NE(chosen_set(a, 5), chosen_set(a, 6));
  EXPECT_NE(chosen_set(a, 5), chosen_set(other_seed, 5));
  EXPECT_NE(chosen_set(a, 5), chosen_set(valid, 5));
}

TEST(Masking, CountChosenMatchesTheTargetsOfApply) {
  const data::Masker m(bert(), 3, data::MaskStream::train);
  std::int64_t n = 0;
  std::vector<std::int32_t> in(40), tg(40);
  for (std::uint64_t s = 100; s < 132; ++s) {
    const auto w = window_of(s, 40);
    m.apply(s, w.data(), 40, in.data(), tg.data());
    n += std::count_if(tg.begin(), tg.end(), [](std::int32_t x) { return x >= 0; });
  }
  EXPECT_EQ(m.count_chosen(100, 32, 40), n);
  EXPECT_GT(n, 0);
}

TEST(Masking, LoaderGivesTheSameMasksForEveryDpSplitAndOnResume) {
  config::DataConfig data;  // synthetic
  config::ModelConfig model;
  model.vocab_size = 50;
  const int T = 12, G = 8, micro = 2, batches = 3;
  auto source = data::make_sample_source(data, model, T, 9, true);
  const data::SampleSource::MaskToken mt = source->mask_token();
  EXPECT_EQ(mt.mask_id, 49);  // the synthetic language leaves the last id for [MASK]
  EXPECT_EQ(mt.data_vocab, 49);
  const data::Masker masker(bert(mt.mask_id, mt.data_vocab), 9, data::MaskStream::train);
  // rows[sample] = inputs then targets, as one loader layout saw them
  using Rows = std::vector<std::vector<std::int32_t>>;
  auto read = [&](int dp, std::uint64_t first_batch) {
    Rows rows(std::size_t(G * batches));
    for (int r = 0; r < dp; ++r) {
      data::LoaderOptions o;
      o.micro_batch_size = micro;
      o.seq_len = T;
      o.global_batch_size = G;
      o.dp_size = dp;
      o.dp_rank = r;
      o.first_batch = first_batch;
      o.masker = &masker;
      data::AsyncLoader loader(*source, o);
      const int per_rank = G / dp;
      for (std::uint64_t b = first_batch; b < std::uint64_t(batches); ++b)
        for (int mb = 0; mb < per_rank / micro; ++mb) {
          const auto batch = loader.next();
          for (int i = 0; i < micro; ++i) {
            const std::size_t sample = std::size_t(b) * G + std::size_t(r * per_rank + mb * micro + i);
            std::vector<std::int32_t> row(batch.inputs + i * T, batch.inputs + (i + 1) * T);
            row.insert(row.end(), batch.targets + i * T, batch.targets + (i + 1) * T);
            rows[sample] = row;
          }
        }
      loader.stop();
    }
    return rows;
  };
  const Rows one = read(1, 0), two = read(2, 0), four = read(4, 0), resumed = read(2, 1);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, four);
  for (std::size_t s = G; s < one.size(); ++s) EXPECT_EQ(resumed[s], one[s]) << "sample " << s;
  int masks = 0, targets = 0;
  for (const auto& row : one)
    for (int t = 0; t < T; ++t) {
      masks += row[std::size_t(t)] == 49;
      targets += row[std::size_t(T + t)] >= 0;
    }
  EXPECT_GT(masks, 0);
  EXPECT_EQ(targets, masker.count_chosen(0, G * batches, T));
}

TEST(Masking, MaskTokenIdComesFromTheTokenizerOrPastItsVocabulary) {
  // A tokenizer with its own [MASK]: special_token_id finds it.
  const std::vector<std::string> corpus(20, "the cat sat on the mat and the dog sat on the log");
  const auto tok = data::train_bpe(corpus, 300, {"<|endoftext|>", "[MASK]"});
  EXPECT_EQ(tok->special_token_id("[MASK]"), tok->vocab_size() - 1);
  EXPECT_EQ(tok->special_token_id("<mask>"), -1);
  // Byte-level text: [MASK] = 256, beyond a 256-entry model vocabulary: a clear error.
  config::DataConfig text;
  text.source = config::DataSource::text;
  const std::string path = ::testing::TempDir() + "/strata_masking_text.txt";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    for (int i = 0; i < 200; ++i) std::fputs("The cat sat on the mat. ", f);
    std::fclose(f);
  }
  text.paths = {path};
  config::ModelConfig model;
  model.vocab_size = 256;
  try {
    data::make_sample_source(text, model, 16, 1, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[MASK] token gets id 256"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set model.vocab_size >= 257"), std::string::npos) << msg;
  }
  model.vocab_size = 257;
  EXPECT_EQ(data::make_sample_source(text, model, 16, 1, true)->mask_token().mask_id, 256);
}

TEST(SyntheticHeldout, WindowsArePureAndInTheVocabulary) {
  config::DataConfig data;
  config::ModelConfig model;
  model.vocab_size = 30;
  auto a = data::make_sample_source(data, model, 16, 4), b = data::make_sample_source(data, model, 16, 4);
  ASSERT_GT(a->num_valid_windows(), 1000);
  std::vector<std::int32_t> wa(17), wb(17), w0(17);
  a->valid_window(0, w0.data());
  a->valid_window(123, wa.data());
  b->valid_window(123, wb.data());
  EXPECT_EQ(wa, wb);
  EXPECT_NE(wa, w0);
  for (int x : wa) EXPECT_TRUE(x >= 0 && x < 30);
}

TEST(Masking, Hdf5DatasetsTakeTheirTokenizersMaskOrTheIdPastIt) {
  // A byte-tokenised dataset (vocabulary 257 with EOS, no [MASK]): [MASK] = 257.
  const data::ByteTokenizer bytes;
  data::DatasetInfo info;
  info.tokenizer_name = bytes.name();
  info.tokenizer_hash = bytes.content_hash();
  info.vocab_size = bytes.vocab_size();
  info.eos_id = bytes.eos_id();
  info.source = "unit test";
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < 3000; ++i) tokens.push_back(i % 50 == 49 ? 256 : 'a' + i % 26);
  const std::vector<std::uint64_t> lengths(60, 50);
  const std::string path = ::testing::TempDir() + "/strata_masking_bytes.h5";
  data::write_token_dataset(path, data::testing_util::one_rank(), info, tokens, lengths);
  config::DataConfig cfg;
  cfg.source = config::DataSource::hdf5;
  cfg.datasets = {{path, 1.0}};
  cfg.valid_fraction = 0.1;
  config::ModelConfig model;
  model.vocab_size = 257;
  try {
    data::make_sample_source(cfg, model, 16, 1, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set model.vocab_size >= 258"), std::string::npos) << e.what();
  }
  model.vocab_size = 260;
  auto source = data::make_sample_source(cfg, model, 16, 1, true);
  EXPECT_EQ(source->mask_token().mask_id, 257);
  EXPECT_EQ(source->mask_token().data_vocab, 257);
  EXPECT_GT(source->num_valid_windows(), 0);
  // causal LM does not resolve a [MASK]
  EXPECT_EQ(data::make_sample_source(cfg, model, 16, 1)->mask_token().mask_id, -1);
}
