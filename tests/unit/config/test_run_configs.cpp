// The shipped run configs (configs/pretrain_*.yaml, what slurm/pretrain_*.sh train) load,
// validate, and carry the published recipes they cite.
#include <gtest/gtest.h>

#include "config_test_util.hpp"
#include "strata/config/load.hpp"

namespace strata::config {
namespace {

using testing::source_path;

JobConfig run_config(const std::string& name) {
  return load_job_config(source_path("configs/" + name + ".yaml"));
}

TEST(ConfigRunConfigs, EveryPretrainConfigLoadsValidatesAndCheckpoints) {
  for (const char* name : {"pretrain_7b", "pretrain_13b", "pretrain_70b", "pretrain_175b", "pretrain_tiny"}) {
    SCOPED_TRACE(name);
    const JobConfig j = run_config(name);
    EXPECT_NO_THROW(validate(j));
    EXPECT_GT(j.ckpt.interval, 0) << "a long run checkpoints periodically";
    EXPECT_GT(j.guard.loss_spike_factor, 1) << "a long run skips loss spikes";
    EXPECT_GT(j.guard.rollback_after, 0);
    EXPECT_EQ(j.data.source, DataSource::hdf5);
    EXPECT_FALSE(j.data.datasets.empty());
    EXPECT_LE(j.train.seq_len, j.model.max_seq_len);
    // The layout fits the model: TP divides the heads, KV heads and MLP; PP x v divides the layers.
    EXPECT_EQ(j.model.num_heads % j.parallel.tp, 0);
    EXPECT_EQ(j.model.kv_heads() % j.parallel.tp, 0);
    EXPECT_EQ(j.model.ffn() % j.parallel.tp, 0);
    EXPECT_EQ(j.model.num_layers % (j.parallel.pp * j.parallel.virtual_stages), 0);
    // AdamW as LLaMA-2 and GPT-3 train: beta2 0.95, weight decay 0.1, clip 1.0, cosine decay to 10%.
    EXPECT_DOUBLE_EQ(j.optim.beta1, 0.9);
    EXPECT_DOUBLE_EQ(j.optim.beta2, 0.95);
    EXPECT_DOUBLE_EQ(j.optim.weight_decay, 0.1);
    EXPECT_DOUBLE_EQ(j.optim.grad_clip, 1.0);
    EXPECT_EQ(j.optim.schedule, ScheduleKind::cosine);
    EXPECT_NEAR(j.optim.min_lr / j.optim.lr, 0.1, 1e-12);
  }
}

// Touvron et al. 2023, sec. 2.2: 4M-token batches, 2000 warm-up steps, eps 1e-5, peak LR 3e-4
// (7B, 13B) and 1.5e-4 (70B), 2T tokens.
TEST(ConfigRunConfigs, LlamaTwoConfigsFollowThePaper) {
  const struct {
    const char* name;
    double lr;
    int layers, tp;
  } cases[] = {{"pretrain_7b", 3e-4, 32, 2}, {"pretrain_13b", 3e-4, 40, 4}, {"pretrain_70b", 1.5e-4, 80, 8}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const JobConfig j = run_config(c.name);
    EXPECT_EQ(j.model.num_layers, c.layers);
    EXPECT_EQ(j.parallel.tp, c.tp);
    EXPECT_EQ(std::int64_t(j.parallel.global_batch_size) * j.train.seq_len, 4194304);
    EXPECT_EQ(j.train.seq_len, 4096);
    EXPECT_EQ(j.optim.warmup_steps, 2000);
    EXPECT_DOUBLE_EQ(j.optim.lr, c.lr);
    EXPECT_DOUBLE_EQ(j.optim.eps, 1e-5);
    EXPECT_NEAR(double(j.train.steps) * 4194304 / 2e12, 1.0, 1e-5);
  }
  const JobConfig j = run_config("pretrain_70b");
  EXPECT_EQ(j.model.kv_heads(), 8);
  EXPECT_EQ(j.model.ffn(), 28672);
  EXPECT_EQ(j.model.vocab_size, 32000);
  EXPECT_EQ(j.parallel.pp, 4);
}

// Brown et al. 2020, table 2.1 and appendix B: 1536 x 2048 tokens a step, LR 0.6e-4, warm-up
// over 375M tokens, cosine decay over 260B tokens, 300B tokens in all.
TEST(ConfigRunConfigs, Gpt3ConfigFollowsThePaper) {
  const JobConfig j = run_config("pretrain_175b");
  EXPECT_EQ(j.model.num_layers, 96);
  EXPECT_EQ(j.model.d_model, 12288);
  EXPECT_EQ(j.model.num_heads, 96);
  EXPECT_EQ(j.train.seq_len, 2048);
  EXPECT_EQ(j.parallel.global_batch_size, 1536);
  EXPECT_DOUBLE_EQ(j.optim.lr, 0.6e-4);
  const double tokens_per_step = 1536.0 * 2048;
  EXPECT_NEAR(j.optim.warmup_steps * tokens_per_step / 375e6, 1.0, 0.01);
  EXPECT_NEAR(j.optim.decay_steps * tokens_per_step / 260e9, 1.0, 1e-4);
  EXPECT_NEAR(j.train.steps * tokens_per_step / 300e9, 1.0, 1e-4);
}

// The slurm tests' job: 8 ranks as tp2 x pp2 x dp2, small enough for 2 cores.
TEST(ConfigRunConfigs, TinyConfigIsTinyAndEightRanks) {
  const JobConfig j = run_config("pretrain_tiny");
  EXPECT_EQ(j.parallel.tp, 2);
  EXPECT_EQ(j.parallel.pp, 2);
  EXPECT_EQ(j.parallel.dp, 0);  // derived: 8 / (2 x 2) = 2, or whatever the study gives it
  EXPECT_EQ(j.parallel.global_batch_size % (j.parallel.micro_batch_size * 4), 0) << "splits over dp up to 4";
  EXPECT_LE(j.train.seq_len, 128);
  EXPECT_LE(j.model.d_model, 128);
  EXPECT_EQ(j.data.tokenizer, "bytes");
  EXPECT_EQ(j.hardware.threads, 1);
}

}  // namespace
}  // namespace strata::config
