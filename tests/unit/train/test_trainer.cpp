#include <gtest/gtest.h>

#include <mpi.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../mpi_singleton.hpp"
#include "strata/config/load.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

config::JobConfig tiny_job(const std::string& out_dir) {
  config::JobConfig job = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  job.train.out_dir = out_dir;
  return job;
}
}  // namespace

TEST(Trainer, LossFallsClearlyOnTheSyntheticLanguage) {
  // The bigram language has entropy ln 4 = 1.39 nats; a uniform guess costs ln V. A working
  // model, optimizer and data path must cut the loss by far more than noise in 150 steps.
  const std::string out = testing::TempDir() + "/strata_train_loss";
  config::JobConfig job = tiny_job(out);
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  ASSERT_EQ(s.steps.size(), std::size_t(job.train.steps));
  const double first = s.steps.front().loss, last = s.steps.back().loss;
  EXPECT_NEAR(first, std::log(double(job.model.vocab_size)), 0.3);
  EXPECT_LT(last, first - 1.5) << "loss went from " << first << " to " << last;
  EXPECT_LT(last, 2.2);
}

TEST(Trainer, WritesOneMetricsObjectPerStepWithEveryField) {
  const std::string out = testing::TempDir() + "/strata_train_metrics";
  config::JobConfig job = tiny_job(out);
  job.train.steps = 5;
  job.parallel.global_batch_size = 2 * job.parallel.micro_batch_size;  // two micro-batches
  train::run_training(job, MPI_COMM_WORLD);
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  int n = 0;
  int evals = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("valid_loss")) {  // the validation at the end: its own line after the last step
      ++evals;
      EXPECT_EQ(j.at("step").get<int>(), 5);
      const double ppl = j.at("valid_ppl").get<double>();
      EXPECT_NEAR(ppl, std::exp(j.at("valid_loss").get<double>()), 1e-8 * ppl);
      continue;
    }
    if (j.contains("stragglers")) continue;  // the straggler report of each log interval
    ++n;
    EXPECT_EQ(j.at("step").get<int>(), n);
    for (const char* key : {"loss", "lr", "grad_norm", "seq_len", "tokens", "loss_tokens", "tokens_per_s",
                            "step_ms", "tflops", "mfu", "mem_bytes"})
      EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j.at("tokens_per_s").get<double>(), 0);
    EXPECT_GT(j.at("mfu").get<double>(), 0);
    EXPECT_GT(j.at("mem_bytes").get<double>(), 1e6);
  }
  EXPECT_EQ(n, 5);
  EXPECT_EQ(evals, 1);
  std::ifstream cfg(out + "/config.yaml");
  EXPECT_TRUE(cfg.good());
}

TEST(Trainer, SameSeedGivesBitwiseIdenticalLosses) {
  config::JobConfig a = tiny_job(testing::TempDir() + "/strata_train_a");
  config::JobConfig b = tiny_job(testing::TempDir() + "/strata_train_b");
  a.train.steps = b.train.steps = 4;
  const auto sa = train::run_training(a, MPI_COMM_WORLD), sb = train::run_training(b, MPI_COMM_WORLD);
  for (std::size_t i = 0; i < sa.steps.size(); ++i) EXPECT_EQ(sa.steps[i].loss, sb.steps[i].loss);
}
