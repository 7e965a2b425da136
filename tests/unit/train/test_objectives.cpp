// The trainer's objectives (objectives.hpp): the validation loss is the mean loss over exactly
// the first eval.windows held-out windows and the perplexity its exp, for causal and masked
// LM; the sequence-length warm-up schedule and its token accounting in the metrics.
// (MPI_Init comes from test_trainer.cpp's global environment: same executable.)
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "strata/config/load.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/sampler.hpp"
#include "strata/model/transformer.hpp"
#include "strata/train/objectives.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

config::JobConfig tiny_job(const std::string& name) {
  config::JobConfig job = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  job.train.out_dir = testing::TempDir() + "/strata_objectives_" + name;
  job.ckpt.save_at_end = false;
  return job;
}

// Mean loss of the trained model over n validation windows spread over the held-out list
// (data::spread_index), one window at a time
// on a plain single-rank Transformer: the definition the trainer's pipelined, batched and
// padded evaluation must reproduce.
model::LossSum reference_validation(const config::JobConfig& job, const train::TrainSummary& s, int n) {
  const bool mlm = job.train.objective == config::ObjectiveKind::masked_lm;
  const int T = job.train.seq_len;
  auto source = data::make_sample_source(job.data, job.model, T, job.train.seed, mlm);
  const auto masker = train::make_masker(job.train, *source, data::MaskStream::valid);
  model::Transformer<float> m(job.model, 1, T);
  EXPECT_EQ(m.params().size(), s.final_params.size());
  std::copy(s.final_params.begin(), s.final_params.end(), m.params().begin());
  const std::size_t n_t = static_cast<std::size_t>(T);
  std::vector<std::int32_t> w(n_t + 1), tokens(n_t), targets(n_t);
  model::LossSum sum;
  for (int k = 0; k < n; ++k) {
    const std::int64_t i = data::spread_index(k, n, source->num_valid_windows());
    source->valid_window(i, w.data());
    if (masker) {
      masker->apply(std::uint64_t(i), w.data(), T, tokens.data(), targets.data());
    } else {
      std::copy_n(w.data(), T, tokens.data());
      std::copy_n(w.data() + 1, T, targets.data());
    }
    const model::LossSum l = m.forward(tokens.data(), targets.data());
    sum.sum += l.sum;
    sum.count += l.count;
  }
  return sum;
}

void expect_validation_is_exp_of_mean_loss(config::JobConfig job) {
  job.train.steps = 4;
  job.eval.interval = 2;
  job.eval.windows = 13;  // not a multiple of the micro-batch (8): the last round is padded
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  ASSERT_EQ(s.evals.size(), 2u);  // steps 2 and 4 (the end)
  EXPECT_EQ(s.evals[0].step, 2);
  EXPECT_EQ(s.evals[1].step, 4);
  const model::LossSum ref = reference_validation(job, s, 13);
  const train::EvalMetrics& e = s.evals.back();
  EXPECT_EQ(e.tokens, ref.count);
  EXPECT_NEAR(e.loss, ref.mean(), 1e-5 * ref.mean());  // fp32, batched vs one window at a time
  EXPECT_DOUBLE_EQ(e.perplexity, std::exp(e.loss));
  EXPECT_DOUBLE_EQ(s.valid_loss, e.loss);
  // metrics.jsonl: the validation lines next to the step lines
  std::ifstream in(job.train.out_dir + "/metrics.jsonl");
  std::string line;
  std::vector<long> eval_steps;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("valid_loss")) continue;
    eval_steps.push_back(j.at("step").get<long>());
    EXPECT_EQ(j.at("valid_tokens").get<std::int64_t>(), ref.count);
  }
  EXPECT_EQ(eval_steps, (std::vector<long>{2, 4}));
}

}  // namespace

TEST(Evaluation, CausalLmValidationIsExpOfMeanLossOnTheSpreadWindows) {
  config::JobConfig job = tiny_job("eval_clm");
  expect_validation_is_exp_of_mean_loss(job);
}

TEST(Evaluation, MaskedLmValidationCoversTheChosenPositionsOfTheSpreadWindows) {
  config::JobConfig job = tiny_job("eval_mlm");
  job.model.attention = config::AttentionKind::bidirectional;
  job.train.objective = config::ObjectiveKind::masked_lm;
  expect_validation_is_exp_of_mean_loss(job);
}

TEST(Evaluation, NoWindowsMeansNoValidation) {
  config::JobConfig job = tiny_job("eval_none");
  job.train.steps = 2;
  job.eval.windows = 0;
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  EXPECT_TRUE(s.evals.empty());
  EXPECT_EQ(s.valid_loss, -1);
}

TEST(MaskedLm, TrainingLossCoversExactlyTheChosenPositions) {
  config::JobConfig job = tiny_job("mlm_tokens");
  job.model.attention = config::AttentionKind::bidirectional;
  job.train.objective = config::ObjectiveKind::masked_lm;
  job.train.steps = 3;
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  auto source = data::make_sample_source(job.data, job.model, job.train.seq_len, job.train.seed, true);
  const auto masker = train::make_masker(job.train, *source, data::MaskStream::train);
  const int G = job.parallel.micro_batch_size;
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    EXPECT_EQ(s.steps[i].loss_tokens, masker->count_chosen(i * std::uint64_t(G), G, job.train.seq_len));
    EXPECT_EQ(s.steps[i].tokens, std::int64_t(G) * job.train.seq_len);
    EXPECT_NEAR(double(s.steps[i].loss_tokens) / double(s.steps[i].tokens), 0.15, 0.08);
    EXPECT_NEAR(s.steps[i].loss, std::log(double(job.model.vocab_size)), 0.5);
  }
}

TEST(SeqLenWarmup, GrowsLinearlyInMultiplesOfEightToTheFullLength) {
  config::TrainConfig t;
  t.seq_len = 128;
  EXPECT_EQ(train::warmup_seq_len(t, 0), 128);  // off
  t.seq_len_warmup = 1000;
  EXPECT_EQ(train::warmup_start_len(t), 16);  // max(8, 128 / 8)
  EXPECT_EQ(train::warmup_seq_len(t, 0), 16);
  EXPECT_EQ(train::warmup_seq_len(t, 500), 72);   // 16 + 112 / 2
  EXPECT_EQ(train::warmup_seq_len(t, 999), 120);  // 16 + 111.9 = 127 -> 120
  EXPECT_EQ(train::warmup_seq_len(t, 1000), 128);
  EXPECT_EQ(train::warmup_seq_len(t, 5000), 128);
  t.seq_len_warmup_start = 60;
  EXPECT_EQ(train::warmup_seq_len(t, 0), 60);    // not a multiple of 8: the start itself
  EXPECT_EQ(train::warmup_seq_len(t, 100), 64);  // 60 + 6.8 = 66 -> 64
  for (std::uint64_t seen = 0; seen < 1000; seen += 37) {
    const int len = train::warmup_seq_len(t, seen);
    EXPECT_TRUE(len >= 60 && len <= 128 && (len % 8 == 0 || len == 60)) << len;
    EXPECT_LE(len, train::warmup_seq_len(t, seen + 37));  // never shrinks
  }
  // The replayed token count is the sum of the steps' G x t.
  for (long step = 1; step < 40; ++step) {
    const std::uint64_t before = train::tokens_before_step(t, 4, step);
    EXPECT_EQ(train::tokens_before_step(t, 4, step + 1),
              before + 4 * std::uint64_t(train::warmup_seq_len(t, before)));
  }
}

TEST(SeqLenWarmup, TrainerCountsTheTokensAndFlopsOfTheCurrentLength) {
  config::JobConfig job = tiny_job("warmup");
  job.train.steps = 12;
  job.train.seq_len_warmup = 600;  // lengths 8, 8, 8, 8, 16, 16, 24, then 32
  job.train.seq_len_warmup_start = 8;
  const int G = job.parallel.micro_batch_size;  // 8 sequences per step
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  ASSERT_EQ(s.steps.size(), 12u);
  std::uint64_t seen = 0;
  for (const train::StepMetrics& m : s.steps) {
    const int t = train::warmup_seq_len(job.train, seen);
    EXPECT_EQ(m.seq_len, t) << "step " << m.step;
    EXPECT_EQ(m.tokens, std::int64_t(G) * t);
    EXPECT_EQ(m.loss_tokens, m.tokens);  // causal LM: every position has a target
    EXPECT_NEAR(m.tokens_per_s * m.step_ms * 1e-3, double(m.tokens), 1e-6 * double(m.tokens));
    EXPECT_NEAR(m.tflops,
                m.tokens_per_s * model::Transformer<float>::model_flops_per_token(job.model, t) / 1e12,
                1e-9 * m.tflops);
    EXPECT_TRUE(std::isfinite(m.loss));
    seen += std::uint64_t(m.tokens);
  }
  std::vector<int> lengths;
  for (const auto& m : s.steps) lengths.push_back(m.seq_len);
  EXPECT_EQ(lengths, (std::vector<int>{8, 8, 8, 8, 16, 16, 24, 32, 32, 32, 32, 32}));
  EXPECT_LT(s.steps.front().tokens, s.steps.back().tokens);
  // metrics.jsonl records the length of every step
  std::ifstream in(job.train.out_dir + "/metrics.jsonl");
  std::string line;
  std::size_t i = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("valid_loss") || j.contains("stragglers")) continue;  // validation and straggler records
    ASSERT_LT(i, s.steps.size());
    EXPECT_EQ(j.at("seq_len").get<int>(), s.steps[i].seq_len);
    EXPECT_EQ(j.at("tokens").get<std::int64_t>(), s.steps[i].tokens);
    ++i;
  }
  EXPECT_EQ(i, s.steps.size());
}

TEST(Resume, MaskedLmWithWarmupContinuesBitwiseFromACheckpoint) {
  // The masks follow the global sample index and the warm-up the tokens seen, both restored
  // from the checkpoint: steps 4..6 of a run resumed at step 3 equal the uninterrupted run's.
  config::JobConfig full = tiny_job("resume_full");
  full.model.attention = config::AttentionKind::bidirectional;
  full.train.objective = config::ObjectiveKind::masked_lm;
  full.train.steps = 6;
  full.train.seq_len_warmup = 200;  // G = 8: lengths 8, 8, 16, then 32 (tokens seen 0, 64, 128, 256)
  full.train.seq_len_warmup_start = 8;
  full.optim.decay_steps = 6;
  full.optim.warmup_steps = 2;
  full.eval.windows = 8;
  full.ckpt.dir = full.train.out_dir + "/checkpoints";
  std::filesystem::remove_all(full.train.out_dir);
  const train::TrainSummary all = train::run_training(full, MPI_COMM_WORLD);
  ASSERT_EQ(all.steps.size(), 6u);

  config::JobConfig first = full;
  first.train.steps = 3;
  first.train.out_dir = testing::TempDir() + "/strata_objectives_resume_first";
  first.ckpt.dir = first.train.out_dir + "/checkpoints";
  first.ckpt.save_at_end = true;
  std::filesystem::remove_all(first.train.out_dir);
  train::run_training(first, MPI_COMM_WORLD);

  config::JobConfig resumed = full;
  resumed.train.resume = first.ckpt.dir + "/step_00000003.h5";
  resumed.train.out_dir = testing::TempDir() + "/strata_objectives_resume_after";
  resumed.ckpt.dir = resumed.train.out_dir + "/checkpoints";
  std::filesystem::remove_all(resumed.train.out_dir);
  const train::TrainSummary after = train::run_training(resumed, MPI_COMM_WORLD);
  ASSERT_EQ(after.steps.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const train::StepMetrics &a = all.steps[i + 3], &b = after.steps[i];
    EXPECT_EQ(b.step, a.step);
    EXPECT_EQ(b.seq_len, a.seq_len) << "step " << a.step;
    EXPECT_EQ(b.loss_tokens, a.loss_tokens) << "step " << a.step;
    EXPECT_EQ(b.loss, a.loss) << "step " << a.step << " not bitwise equal";
  }
  std::vector<int> lengths;
  for (const auto& m : all.steps) lengths.push_back(m.seq_len);
  EXPECT_EQ(lengths, (std::vector<int>{8, 8, 16, 32, 32, 32}));  // the resume point is inside the warm-up
  ASSERT_EQ(after.evals.size(), 1u);
  EXPECT_EQ(after.evals[0].loss, all.evals.back().loss);
}
