#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data_test_util.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/sampler.hpp"
#include "strata/data/tokenizer.hpp"

using namespace strata;
using namespace strata::data;

TEST(BlendSchedule, ProportionsAreWithinOnePercentOver100kSamples) {
  const BlendSchedule blend({0.7, 0.2, 0.1});
  std::vector<std::uint64_t> counts(3);
  for (std::uint64_t s = 0; s < 100000; ++s) ++counts[std::size_t(blend.pick(s).dataset)];
  EXPECT_NEAR(double(counts[0]) / 1e5, 0.7, 0.007);
  EXPECT_NEAR(double(counts[1]) / 1e5, 0.2, 0.002);
  EXPECT_NEAR(double(counts[2]) / 1e5, 0.1, 0.001);
  // Every prefix stays close too (greedy interleave), not only whole blocks.
  std::vector<std::uint64_t> prefix(3);
  for (std::uint64_t s = 0; s < 1000; ++s) ++prefix[std::size_t(blend.pick(s).dataset)];
  EXPECT_NEAR(double(prefix[2]), 100.0, 2.0);
}

TEST(BlendSchedule, EachDatasetIsDrawnInOrderWithoutGapsOrRepeats) {
  const BlendSchedule blend({3, 1, 1}, 97);
  std::vector<std::uint64_t> next(3, 0);
  for (std::uint64_t s = 0; s < 5000; ++s) {
    const auto p = blend.pick(s);
    ASSERT_EQ(p.index, next[std::size_t(p.dataset)]++) << "sample " << s;
  }
  for (int d = 0; d < 3; ++d) EXPECT_EQ(blend.count_before(d, 5000), next[std::size_t(d)]);
}

TEST(DatasetSampler, EpochsVisitEveryTrainingWindowOnceAndValidWindowsNever) {
  DatasetSampler s(1000, 0.05, 42, 0);
  EXPECT_GT(s.num_valid(), 20);
  EXPECT_LT(s.num_valid(), 90);
  std::set<std::int64_t> valid;
  for (std::int64_t i = 0; i < s.num_valid(); ++i) valid.insert(s.valid_window(i));
  std::set<std::int64_t> seen;
  std::vector<std::int64_t> epoch0, epoch1;
  for (std::uint64_t k = 0; k < 2 * std::uint64_t(s.num_train()); ++k) {
    std::uint64_t e = 0;
    const auto w = s.train_window(k, &e);
    EXPECT_EQ(valid.count(w), 0u);
    EXPECT_EQ(e, k / std::uint64_t(s.num_train()));
    (e == 0 ? epoch0 : epoch1).push_back(w);
  }
  EXPECT_EQ(std::set<std::int64_t>(epoch0.begin(), epoch0.end()).size(), std::size_t(s.num_train()));
  EXPECT_NE(epoch0, epoch1);
  // The validation split does not depend on the seed.
  DatasetSampler other(1000, 0.05, 7, 0);
  EXPECT_EQ(other.num_valid(), s.num_valid());
}

TEST(GlobalSampler, DataParallelSlicesConcatenateToTheSameStreamForAnyDpSize) {
  // The samples of global batch b, gathered over DP ranks and micro-batches, are the same
  // [b B, (b+1) B) for dp = 1, 2, 4 (DESIGN.md invariant 3).
  const int B = 16, micro = 2;
  for (std::uint64_t batch : {0ull, 1ull, 7ull}) {
    for (int dp : {1, 2, 4}) {
      std::vector<std::uint64_t> samples;
      for (int r = 0; r < dp; ++r)
        for (int m = 0; m < B / dp / micro; ++m) {
          const SampleSpan sp = micro_batch_span(batch, B, dp, r, micro, m);
          for (int i = 0; i < sp.count; ++i) samples.push_back(sp.first + std::uint64_t(i));
        }
      std::vector<std::uint64_t> want(B);
      for (int i = 0; i < B; ++i) want[std::size_t(i)] = batch * B + std::uint64_t(i);
      EXPECT_EQ(samples, want) << "dp " << dp;
    }
  }
  EXPECT_EQ(dp_slice(3, 16, 4, 2).first, 3u * 16 + 8);
  EXPECT_EQ(dp_slice(3, 16, 4, 2).count, 4);
}

namespace {

std::string write_dataset(const std::string& path, int n_tokens, int base) {
  const ByteTokenizer t;
  DatasetInfo info;
  info.tokenizer_name = t.name();
  info.tokenizer_hash = t.content_hash();
  info.vocab_size = t.vocab_size();
  info.eos_id = t.eos_id();
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(n_tokens));
  for (int i = 0; i < n_tokens; ++i) tokens[std::size_t(i)] = base + i % 50;
  const std::vector<std::uint64_t> lengths = {std::uint64_t(n_tokens)};
  write_token_dataset(path, testing_util::one_rank(), info, tokens, lengths);
  return path;
}

config::DataConfig blend_config(const std::string& dir) {
  config::DataConfig cfg;
  cfg.source = config::DataSource::hdf5;
  cfg.datasets = {{write_dataset(dir + "/a.h5", 20000, 0), 0.7},
                  {write_dataset(dir + "/b.h5", 9000, 100), 0.2},
                  {write_dataset(dir + "/c.h5", 5000, 200), 0.1}};
  cfg.valid_fraction = 0.02;
  return cfg;
}

}  // namespace

TEST(BlendedSource, SamplesArePureFunctionsOfSeedAndIndexAndFollowTheWeights) {
  const std::string dir = testing_util::temp_folder();
  const config::DataConfig cfg = blend_config(dir);
  config::ModelConfig model;
  model.vocab_size = 257;
  auto a = make_sample_source(cfg, model, 15, 9), b = make_sample_source(cfg, model, 15, 9);
  std::vector<std::int32_t> wa(16), wb(16);
  std::map<int, int> by_dataset;
  for (std::uint64_t s = 0; s < 2000; ++s) {
    a->train_window(s, wa.data());
    by_dataset[wa[0] / 100]++;
  }
  for (std::uint64_t s = 2000; s-- > 0;) {  // reverse order: random access gives the same windows
    a->train_window(s, wa.data());
    b->train_window(s, wb.data());
    ASSERT_EQ(wa, wb) << "sample " << s;
  }
  EXPECT_EQ(by_dataset[0], 1400);
  EXPECT_EQ(by_dataset[1], 400);
  EXPECT_EQ(by_dataset[2], 200);
  EXPECT_GT(a->num_valid_windows(), 0);
}

TEST(AsyncLoader, GivesTheSameBatchesAsDirectReadsForAnyDpSizeAndPrefetch) {
  const std::string dir = testing_util::temp_folder();
  const config::DataConfig cfg = blend_config(dir);
  config::ModelConfig model;
  model.vocab_size = 257;
  const int T = 15, B = 8, micro = 2, steps = 6;
  auto direct = make_sample_source(cfg, model, T, 3);
  std::vector<std::int32_t> w(T + 1);
  for (int dp : {1, 2, 4}) {
    for (int prefetch : {1, 3}) {
      std::vector<std::unique_ptr<SampleSource>> sources;
      std::vector<std::unique_ptr<AsyncLoader>> loaders;
      for (int r = 0; r < dp; ++r) {
        sources.push_back(make_sample_source(cfg, model, T, 3));
        loaders.push_back(
            std::make_unique<AsyncLoader>(*sources.back(), LoaderOptions{micro, T, B, dp, r, prefetch, 0}));
      }
      for (int step = 0; step < steps; ++step)
        for (int r = 0; r < dp; ++r)
          for (int m = 0; m < B / dp / micro; ++m) {
            const auto batch = loaders[std::size_t(r)]->next();
            for (int i = 0; i < micro; ++i) {
              const std::uint64_t s = std::uint64_t(step) * B + std::uint64_t(r) * (B / dp) +
                                      std::uint64_t(m) * micro + std::uint64_t(i);
              direct->train_window(s, w.data());
              for (int t = 0; t < T; ++t) {
                ASSERT_EQ(batch.inputs[i * T + t], w[std::size_t(t)]) << "dp " << dp << " sample " << s;
                ASSERT_EQ(batch.targets[i * T + t], w[std::size_t(t) + 1]);
              }
            }
          }
      for (auto& l : loaders) EXPECT_GE(l->take_wait_ms(), 0.0);
    }
  }
}
