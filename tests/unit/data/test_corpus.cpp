#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "strata/core/error.hpp"
#include "strata/data/corpus.hpp"

using namespace strata;

TEST(GlobalSampler, EachEpochVisitsEveryWindowOnceInASeedDependentOrder) {
  data::GlobalSampler s(1000, 10, 42);
  ASSERT_EQ(s.num_windows(), 100);
  std::set<std::int64_t> seen;
  std::vector<std::int64_t> epoch0, epoch1;
  for (std::uint64_t i = 0; i < 100; ++i) epoch0.push_back(s.window_start(i));
  for (std::uint64_t i = 100; i < 200; ++i) epoch1.push_back(s.window_start(i));
  seen.insert(epoch0.begin(), epoch0.end());
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(*seen.rbegin(), 990);
  EXPECT_NE(epoch0, epoch1);  // reshuffled each epoch
  data::GlobalSampler other_seed(1000, 10, 43);
  EXPECT_NE(other_seed.window_start(0) * 1000 + other_seed.window_start(1), epoch0[0] * 1000 + epoch0[1]);
}

TEST(GlobalSampler, SampleIsAPureFunctionOfSeedAndIndex) {
  // Random access in any order (a resumed run, another DP split) gives the same windows.
  data::GlobalSampler a(5000, 17, 7), b(5000, 17, 7);
  std::vector<std::int64_t> forward;
  for (std::uint64_t i = 0; i < 1000; ++i) forward.push_back(a.window_start(i));
  for (std::uint64_t i = 1000; i-- > 0;) ASSERT_EQ(b.window_start(i), forward[i]);
}

TEST(TokenCorpus, SyntheticBigramIsDeterministicAndInVocabulary) {
  const auto a = data::TokenCorpus::synthetic(50, 10000, 3);
  const auto b = data::TokenCorpus::synthetic(50, 10000, 3);
  EXPECT_EQ(a.tokens(), b.tokens());
  EXPECT_TRUE(std::all_of(a.tokens().begin(), a.tokens().end(), [](int t) { return t >= 0 && t < 50; }));
  // Each token has at most 4 successors.
  std::vector<std::set<int>> next(50);
  for (std::size_t i = 0; i + 1 < a.tokens().size(); ++i)
    next[std::size_t(a.tokens()[i])].insert(a.tokens()[i + 1]);
  for (const auto& s : next) EXPECT_LE(s.size(), 4u);
}

TEST(TokenCorpus, TextFilesAreReadAsBytesAndMissingFileIsNamed) {
  const std::string path = testing::TempDir() + "/strata_corpus.txt";
  std::ofstream(path) << "ab\xc3\xa9";
  const auto c = data::TokenCorpus::from_text_files({path});
  EXPECT_EQ(c.tokens(), (std::vector<std::int32_t>{'a', 'b', 0xc3, 0xa9}));
  try {
    data::TokenCorpus::from_text_files({"/nonexistent/corpus.txt"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/corpus.txt"), std::string::npos);
  }
}

TEST(FillBatch, TargetsAreInputsShiftedByOne) {
  const auto c = data::TokenCorpus::synthetic(30, 4000, 1);
  data::GlobalSampler s(4000, 9, 1);
  std::vector<std::int32_t> in(3 * 8), tg(3 * 8);
  data::fill_batch(c, s, 5, 3, 8, in.data(), tg.data());
  for (int b = 0; b < 3; ++b) {
    const std::int64_t start = s.window_start(5 + std::uint64_t(b));
    for (int t = 0; t < 8; ++t) {
      EXPECT_EQ(in[std::size_t(b * 8 + t)], c.tokens()[std::size_t(start + t)]);
      EXPECT_EQ(tg[std::size_t(b * 8 + t)], c.tokens()[std::size_t(start + t + 1)]);
    }
  }
}
