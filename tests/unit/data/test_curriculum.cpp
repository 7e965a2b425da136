// Curriculum schedules (sampler.hpp): mixture weights that change over training and difficulty
// ordering with a pacing function. Both keep the sampler's contract: global sample s is a pure
// function of (seed, s, schedule), so any DP size, any read order and a resumed run see the
// same stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "data_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/sampler.hpp"
#include "strata/data/tokenizer.hpp"

using namespace strata;
using namespace strata::data;

namespace {

// Documents of lengths 5, 10, ..., each token = base + (document index % 50): the window's
// first token tells which document (so how long) it came from.
std::string write_docs(const std::string& path, int docs, int base) {
  const ByteTokenizer t;
  DatasetInfo info;
  info.tokenizer_name = t.name();
  info.tokenizer_hash = t.content_hash();
  info.vocab_size = t.vocab_size();
  info.eos_id = t.eos_id();
  std::vector<std::int32_t> tokens;
  std::vector<std::uint64_t> lengths;
  for (int d = 0; d < docs; ++d) {
    const int len = 5 * (1 + (d * 7) % 40);  // lengths in a scrambled order
    for (int i = 0; i < len; ++i) tokens.push_back(base + len / 5);
    lengths.push_back(std::uint64_t(len));
  }
  write_token_dataset(path, testing_util::one_rank(), info, tokens, lengths);
  return path;
}

config::DataConfig two_datasets(const std::string& dir) {
  config::DataConfig cfg;
  cfg.source = config::DataSource::hdf5;
  cfg.datasets = {{write_docs(dir + "/a.h5", 400, 0), 1.0}, {write_docs(dir + "/b.h5", 300, 100), 1.0}};
  cfg.valid_fraction = 0.02;
  return cfg;
}

}  // namespace

TEST(MixtureSchedule, BlocksFollowTheInterpolatedWeightsAndIndicesMatchCounts) {
  // 0..10 blocks: all of dataset 0; then linear to 1:3 at block 30; constant after.
  const int M = 100;
  BlendSchedule s({{0, {1.0, 0.0}}, {1000, {1.0, 0.0}}, {3000, {1.0, 3.0}}}, M);
  std::vector<std::uint64_t> seen(2, 0);
  for (std::uint64_t x = 0; x < 6000; ++x) {
    const auto p = s.pick(x);
    ASSERT_EQ(p.index, seen[std::size_t(p.dataset)]) << "sample " << x;  // the k-th of its dataset
    ASSERT_EQ(s.count_before(p.dataset, x), seen[std::size_t(p.dataset)]);
    ++seen[std::size_t(p.dataset)];
    if (x < 1000) {
      ASSERT_EQ(p.dataset, 0) << "a zero weight drew sample " << x;
    }
  }
  // The last 3000 samples are 1:3.
  EXPECT_EQ(s.count_before(1, 6000) - s.count_before(1, 3000), 2250u);
  // Block 20 takes the weights at its midpoint, sample 2050: 1 : 3 x 1050/2000 = 1 : 1.575, so
  // dataset 1 gets round(100 x 1.575 / 2.575) = 61 of its 100 samples.
  EXPECT_EQ(s.count_before(1, 2100) - s.count_before(1, 2000), 61u);
  // Far ahead and back again (the prefix marks and the cursor) give the same counts.
  const std::uint64_t far = s.count_before(0, 2'000'000);
  EXPECT_EQ(s.count_before(1, 6000) - s.count_before(1, 3000), 2250u);
  EXPECT_EQ(s.count_before(0, 2'000'000), far);
  EXPECT_EQ(far + s.count_before(1, 2'000'000), 2'000'000u);
  // Random access (a resumed run asks far ahead first) gives the same picks.
  BlendSchedule t({{0, {1.0, 0.0}}, {1000, {1.0, 0.0}}, {3000, {1.0, 3.0}}}, M);
  EXPECT_EQ(t.count_before(0, 5555), s.count_before(0, 5555));
  for (std::uint64_t x = 5999; x > 5000; --x) {
    ASSERT_EQ(t.pick(x).dataset, s.pick(x).dataset);
    ASSERT_EQ(t.pick(x).index, s.pick(x).index);
  }
  EXPECT_THROW(BlendSchedule({{0, {0.0, 0.0}}}, M), Error);
  EXPECT_THROW(BlendSchedule({{10, {1.0}}, {5, {1.0}}}, M), Error);
}

TEST(MixtureSchedule, FixedWeightsKeepTheirStream) {
  // The fixed-weight constructor is unchanged: the 70/20/10 block of the blend tests.
  const BlendSchedule b({0.7, 0.2, 0.1});
  EXPECT_EQ(b.per_block(), (std::vector<std::uint32_t>{7000, 2000, 1000}));
  EXPECT_FALSE(b.scheduled());
}

TEST(Pacing, CompetenceGrowsFromTheStartToOneAsDefined) {
  Pacing p;
  p.start = 0.2;
  p.samples = 100;
  p.kind = Pacing::Kind::linear;
  EXPECT_DOUBLE_EQ(p.competence(0), 0.2);
  EXPECT_DOUBLE_EQ(p.competence(50), 0.6);
  EXPECT_DOUBLE_EQ(p.competence(100), 1.0);
  p.kind = Pacing::Kind::root;
  EXPECT_DOUBLE_EQ(p.competence(0), 0.2);
  EXPECT_DOUBLE_EQ(p.competence(50), std::sqrt(0.04 + 0.96 * 0.5));
  p.kind = Pacing::Kind::step;
  p.stages = 4;
  EXPECT_DOUBLE_EQ(p.competence(24), 0.2);
  EXPECT_DOUBLE_EQ(p.competence(25), 0.4);
  EXPECT_DOUBLE_EQ(p.competence(99), 0.8);
  EXPECT_DOUBLE_EQ(p.competence(1000), 1.0);
}

TEST(DifficultyCurriculum, EarlySamplesComeFromTheEasiestWindowsThenTheEpochPermutation) {
  DatasetSampler s(1000, 0.0, 5, 0);
  std::vector<double> difficulty(1000);
  for (int w = 0; w < 1000; ++w) difficulty[std::size_t(w)] = double((w * 37) % 1000);  // a scrambled order
  Pacing p;
  p.kind = Pacing::Kind::linear;
  p.start = 0.1;
  p.samples = 500;
  s.set_curriculum(difficulty, p, false);
  ASSERT_EQ(s.sorted_windows().size(), 1000u);
  for (std::size_t i = 1; i < 1000; ++i)
    ASSERT_LE(difficulty[std::size_t(s.sorted_windows()[i - 1])],
              difficulty[std::size_t(s.sorted_windows()[i])]);
  DatasetSampler plain(1000, 0.0, 5, 0);
  for (std::uint64_t k = 0; k < 800; ++k) {
    const std::int64_t w = s.train_window(k, k, nullptr);
    const double c = p.competence(k);
    if (c < 1.0) {
      const double rank = double(std::find(s.sorted_windows().begin(), s.sorted_windows().end(), w) -
                                 s.sorted_windows().begin());
      ASSERT_LT(rank, std::ceil(c * 1000)) << "sample " << k << " drew a window beyond the competence";
    } else {
      ASSERT_EQ(w, plain.train_window(k)) << "after the pacing, the epoch permutation";
    }
  }
  // Reverse: the hardest first.
  DatasetSampler r(1000, 0.0, 5, 0);
  r.set_curriculum(difficulty, p, true);
  EXPECT_EQ(difficulty[std::size_t(r.sorted_windows().front())], 999.0);
}

TEST(DifficultyCurriculum, LengthOrderedSourceIsPureAndTheSameForAnyDpSizeAndResume) {
  const std::string dir = testing_util::temp_folder();
  config::DataConfig cfg = two_datasets(dir);
  cfg.curriculum = config::CurriculumOrder::length;
  cfg.curriculum_pacing = config::CurriculumPacing::linear;
  cfg.curriculum_start = 0.1;
  const int T = 15, B = 8;
  cfg.curriculum_tokens = 300 * T;  // pacing over the first 300 samples
  cfg.schedule = {{0, {1.0, 0.0}}, {150 * T, {1.0, 0.0}}, {250 * T, {1.0, 1.0}}};
  config::ModelConfig model;
  model.vocab_size = 257;
  auto a = make_sample_source(cfg, model, T, 4), b = make_sample_source(cfg, model, T, 4);
  std::vector<std::int32_t> wa(T + 1), wb(T + 1);
  std::vector<std::vector<std::int32_t>> forward;
  double early = 0, late = 0;
  for (std::uint64_t s = 0; s < 600; ++s) {
    a->train_window(s, wa.data());
    forward.push_back(wa);
    const int len = (wa[0] % 100) * 5;  // the length of the window's first document
    if (s < 50) early += len / 50.0;
    if (s >= 500) late += len / 100.0;
    if (s < 150) {
      ASSERT_LT(wa[0], 100) << "the schedule gives dataset b no weight before sample 150";
    }
  }
  EXPECT_LT(early, late * 0.6) << "easy (short) documents first: mean length " << early << " early, " << late
                               << " late";
  for (std::uint64_t s = 600; s-- > 0;) {  // random access in reverse: the same windows
    b->train_window(s, wb.data());
    ASSERT_EQ(wb, forward[s]) << "sample " << s;
  }
  // Loaders of any DP size, and one resumed at batch 20, read the same global stream.
  for (int dp : {1, 2, 4})
    for (std::uint64_t first : {std::uint64_t(0), std::uint64_t(20)}) {
      std::vector<std::unique_ptr<SampleSource>> sources;
      std::vector<std::unique_ptr<AsyncLoader>> loaders;
      for (int r = 0; r < dp; ++r) {
        sources.push_back(make_sample_source(cfg, model, T, 4));
        loaders.push_back(
            std::make_unique<AsyncLoader>(*sources.back(), LoaderOptions{B / dp, T, B, dp, r, 2, first}));
      }
      for (std::uint64_t step = first; step < first + 30; ++step)
        for (int r = 0; r < dp; ++r) {
          const auto batch = loaders[std::size_t(r)]->next();
          for (int i = 0; i < B / dp; ++i) {
            const std::uint64_t s = step * B + std::uint64_t(r * (B / dp) + i);
            for (int t = 0; t < T; ++t)
              ASSERT_EQ(batch.inputs[i * T + t], forward[s][std::size_t(t)]) << "dp " << dp;
          }
        }
    }
  // The checkpointed position per dataset follows the schedule.
  const auto consumed = a->consumed_per_dataset(200);
  EXPECT_EQ(consumed[0].second + consumed[1].second, 200u);
  EXPECT_GT(consumed[0].second, 150u);
}

TEST(DifficultyCurriculum, ScoreFilesAndQualityNeedWhatTheyReadAndSayWhatIsWrong) {
  const std::string dir = testing_util::temp_folder();
  config::DataConfig cfg = two_datasets(dir);
  config::ModelConfig model;
  model.vocab_size = 257;
  cfg.curriculum = config::CurriculumOrder::quality;
  cfg.curriculum_tokens = 1000;
  try {
    make_sample_source(cfg, model, 15, 1);
    FAIL() << "quality ordering without /doc_scores was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/doc_scores"), std::string::npos) << e.what();
  }
  cfg.curriculum = config::CurriculumOrder::scores;
  {
    std::ofstream a(dir + "/a.scores"), b(dir + "/b.scores");
    for (int i = 0; i < 400; ++i) a << (i % 3) << "\n";
    for (int i = 0; i < 299; ++i) b << 1.5 << "\n";  // one short
  }
  cfg.curriculum_scores = {dir + "/a.scores", dir + "/b.scores"};
  try {
    make_sample_source(cfg, model, 15, 1);
    FAIL() << "a score file with too few lines was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.scores: 299 scores for the 300 documents"), std::string::npos)
        << e.what();
  }
  std::ofstream(dir + "/b.scores", std::ios::app) << "2\n";
  auto src = make_sample_source(cfg, model, 15, 1);
  EXPECT_NE(src->description().find("curriculum"), std::string::npos);
}
