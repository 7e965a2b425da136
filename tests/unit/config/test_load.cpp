// Valid configs load with the right values: full files, model includes (relative to the file,
// then the current directory), --set overrides in order, to_yaml round trips, and every
// shipped model file.
#include <algorithm>

#include "config_test_util.hpp"
#include "strata/config/load.hpp"

using namespace strata::config;
using namespace strata::config::testing;

namespace {
const char* kFullJob = R"(# a job touching every section
model:
  name: small
  num_layers: 3
  d_model: 384                 # head size 64: the CUDA backend's attention runs it
  num_heads: 6
  num_kv_heads: 3
  ffn_hidden: 96
  vocab_size: 300
  max_seq_len: 64
  norm: rmsnorm
  mlp: swiglu
  positions: rope
  attention: bidirectional
  tied_embeddings: false
  bias: false
  norm_eps: 1.0e-6
  rope_theta: 500000
  init_std: 0.01
  recompute: full
parallel:
  tp: 3
  pp: 1
  dp: 2
  micro_batch_size: 2
  global_batch_size: 8
optim:
  lr: 3e-4
  min_lr: 3.0e-5
  warmup_steps: 5
  decay_steps: 40
  schedule: linear
  beta1: 0.8
  beta2: 0.99
  eps: 1e-9
  weight_decay: 0.0
  decay_embeddings: true
  grad_clip: 0
train:
  steps: 50
  seed: 18446744073709551615
  seq_len: 64
  out_dir: runs/small
  log_interval: 5
  objective: masked_lm
  mlm_probability: 0.2
  mlm_mask_fraction: 0.7
  mlm_random_fraction: 0.2
  seq_len_warmup: 100000
  seq_len_warmup_start: 16
eval:
  interval: 10
  windows: 32
data:
  source: text
  paths: [a.txt, "b c.txt"]
hardware:
  device: cuda
  peak_tflops: 989.5
  threads: 2
)";
}  // namespace

TEST(ConfigLoad, FullFileGivesEveryValue) {
  ScratchDir dir;
  const std::string path = dir.write("job.yaml", kFullJob);
  const JobConfig j = load_job_config(path);
  EXPECT_EQ(j.source, path);
  EXPECT_EQ(j.model.name, "small");
  EXPECT_EQ(j.model.num_layers, 3);
  EXPECT_EQ(j.model.d_model, 384);
  EXPECT_EQ(j.model.num_heads, 6);
  EXPECT_EQ(j.model.kv_heads(), 3);
  EXPECT_EQ(j.model.ffn(), 96);
  EXPECT_EQ(j.model.vocab_size, 300);
  EXPECT_EQ(j.model.max_seq_len, 64);
  EXPECT_EQ(j.model.norm, NormKind::rmsnorm);
  EXPECT_EQ(j.model.mlp, MlpKind::swiglu);
  EXPECT_EQ(j.model.positions, PositionKind::rope);
  EXPECT_EQ(j.model.attention, AttentionKind::bidirectional);
  EXPECT_FALSE(j.model.tied_embeddings);
  EXPECT_FALSE(j.model.bias);
  EXPECT_DOUBLE_EQ(j.model.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(j.model.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(j.model.init_std, 0.01);
  EXPECT_EQ(j.model.recompute, RecomputeKind::full);
  EXPECT_EQ(j.parallel.tp, 3);
  EXPECT_EQ(j.parallel.dp, 2);
  EXPECT_EQ(j.parallel.micro_batch_size, 2);
  EXPECT_EQ(j.parallel.global_batch_size, 8);
  EXPECT_DOUBLE_EQ(j.optim.lr, 3e-4);
  EXPECT_DOUBLE_EQ(j.optim.min_lr, 3e-5);
  EXPECT_EQ(j.optim.warmup_steps, 5);
  EXPECT_EQ(j.optim.decay_steps, 40);
  EXPECT_EQ(j.optim.schedule, ScheduleKind::linear);
  EXPECT_DOUBLE_EQ(j.optim.beta1, 0.8);
  EXPECT_DOUBLE_EQ(j.optim.beta2, 0.99);
  EXPECT_DOUBLE_EQ(j.optim.eps, 1e-9);
  EXPECT_DOUBLE_EQ(j.optim.weight_decay, 0.0);
  EXPECT_TRUE(j.optim.decay_embeddings);
  EXPECT_DOUBLE_EQ(j.optim.grad_clip, 0.0);
  EXPECT_EQ(j.train.steps, 50);
  EXPECT_EQ(j.train.seed, 18446744073709551615ull);
  EXPECT_EQ(j.train.seq_len, 64);
  EXPECT_EQ(j.train.out_dir, "runs/small");
  EXPECT_EQ(j.train.log_interval, 5);
  EXPECT_EQ(j.train.objective, ObjectiveKind::masked_lm);
  EXPECT_DOUBLE_EQ(j.train.mlm_probability, 0.2);
  EXPECT_DOUBLE_EQ(j.train.mlm_mask_fraction, 0.7);
  EXPECT_DOUBLE_EQ(j.train.mlm_random_fraction, 0.2);
  EXPECT_EQ(j.train.seq_len_warmup, 100000u);
  EXPECT_EQ(j.train.seq_len_warmup_start, 16);
  EXPECT_EQ(j.eval.interval, 10);
  EXPECT_EQ(j.eval.windows, 32);
  EXPECT_EQ(j.data.source, DataSource::text);
  EXPECT_EQ(j.data.paths, (std::vector<std::string>{"a.txt", "b c.txt"}));
  EXPECT_EQ(j.hardware.device, DeviceKind::cuda);
  EXPECT_DOUBLE_EQ(j.hardware.peak_tflops, 989.5);
  EXPECT_EQ(j.hardware.threads, 2);
}

TEST(ConfigLoad, MissingKeysAndEmptyFileKeepDefaults) {
  const JobConfig defaults;
  const JobConfig empty = parse_job_config("", "empty.yaml");
  JobConfig expected;
  expected.source = "empty.yaml";
  EXPECT_EQ(to_yaml(empty), to_yaml(expected));
  const JobConfig j = parse_job_config("train:\n  steps: 9\noptim:\n  warmup_steps: 2\ndata:\n", "job.yaml");
  EXPECT_EQ(j.train.steps, 9);
  EXPECT_EQ(j.train.seq_len, defaults.train.seq_len);
  EXPECT_EQ(j.model.d_model, defaults.model.d_model);
  EXPECT_DOUBLE_EQ(j.optim.lr, defaults.optim.lr);
}

TEST(ConfigLoad, DataPathsAcceptsASingleString) {
  const JobConfig j = parse_job_config("data:\n  source: text\n  paths: corpus.txt\n", "job.yaml");
  EXPECT_EQ(j.data.paths, std::vector<std::string>{"corpus.txt"});
}

TEST(ConfigLoad, ModelFileIsFoundRelativeToTheIncludingFile) {
  ScratchDir dir;
  dir.write("runs/models/m.yaml", "num_layers: 5\nd_model: 40\nnum_heads: 5\nmax_seq_len: 256\n");
  const std::string job = dir.write("runs/job.yaml", "model: models/m.yaml\ntrain:\n  steps: 300\n");
  ChangeDir elsewhere(dir.path());  // "models/m.yaml" does not exist relative to here
  const JobConfig j = load_job_config(job);
  EXPECT_EQ(j.model.num_layers, 5);
  EXPECT_EQ(j.model.d_model, 40);
  EXPECT_EQ(j.train.steps, 300);
}

TEST(ConfigLoad, ModelFileFallsBackToTheCurrentDirectory) {
  ScratchDir dir;
  dir.write("configs/models/m.yaml", "num_layers: 7\n");
  const std::string job = dir.write("jobs/job.yaml", "model: configs/models/m.yaml\n");
  ChangeDir here(dir.path());
  EXPECT_EQ(load_job_config(job).model.num_layers, 7);
}

TEST(ConfigLoad, ShippedModelFileIncludesByAbsolutePath) {
  const JobConfig j = parse_job_config(
      "model: " + source_path("configs/models/tiny_llama.yaml") + "\ntrain:\n  seq_len: 32\n", "job.yaml");
  EXPECT_EQ(j.model.name, "tiny_llama");
  EXPECT_EQ(j.model.kv_heads(), 2);
}

// ---- --set ----
TEST(ConfigOverrides, SetBeatsFileValuesAndLaterSetsWin) {
  const JobConfig j =
      parse_job_config("train:\n  steps: 10\n  seq_len: 64\noptim:\n  lr: 0.1\n", "job.yaml",
                       {"train.steps=200", "optim.lr=1e-3", "train.steps=300", "hardware.threads=4"});
  EXPECT_EQ(j.train.steps, 300);
  EXPECT_EQ(j.train.seq_len, 64);  // untouched
  EXPECT_DOUBLE_EQ(j.optim.lr, 1e-3);
  EXPECT_EQ(j.hardware.threads, 4);  // section absent from the file
}

TEST(ConfigOverrides, SetReachesIntoAnIncludedModelFile) {
  ScratchDir dir;
  dir.write("models/m.yaml", "num_layers: 5\nd_model: 40\nnum_heads: 5\n");
  const std::string job = dir.write("job.yaml", "model: models/m.yaml\n");
  const JobConfig j = load_job_config(job, {"model.num_layers=2", "model.norm=rmsnorm"});
  EXPECT_EQ(j.model.num_layers, 2);
  EXPECT_EQ(j.model.d_model, 40);  // the rest still comes from the model file
  EXPECT_EQ(j.model.norm, NormKind::rmsnorm);
}

TEST(ConfigOverrides, SetTakesListValues) {
  const JobConfig j = parse_job_config("data:\n  paths: [x.txt]\n", "job.yaml",
                                       {"data.source=text", "data.paths=[a.txt,b.txt]"});
  EXPECT_EQ(j.data.source, DataSource::text);
  EXPECT_EQ(j.data.paths, (std::vector<std::string>{"a.txt", "b.txt"}));
}

TEST(ConfigOverrides, SetWithAMappingMergesIntoTheSection) {
  const JobConfig j =
      parse_job_config("optim:\n  lr: 0.1\n  beta2: 0.9\n", "job.yaml", {"optim={lr: 0.01, beta1: 0.5}"});
  EXPECT_DOUBLE_EQ(j.optim.lr, 0.01);
  EXPECT_DOUBLE_EQ(j.optim.beta1, 0.5);
  EXPECT_DOUBLE_EQ(j.optim.beta2, 0.9);  // kept from the file
}

TEST(ConfigOverrides, SetModelToAFileIncludesIt) {
  const JobConfig j =
      parse_job_config("model:\n  num_layers: 9\ntrain:\n  seq_len: 16\n", "job.yaml",
                       {"model=" + source_path("configs/models/tiny_gpt.yaml"), "model.num_layers=1"});
  EXPECT_EQ(j.model.name, "tiny_gpt");
  EXPECT_EQ(j.model.num_layers, 1);
  EXPECT_EQ(j.model.d_model, 32);
}

// ---- to_yaml ----
TEST(ConfigToYaml, RoundTripsEveryField) {
  ScratchDir dir;
  const JobConfig j = load_job_config(dir.write("job.yaml", kFullJob));
  const std::string text = to_yaml(j);
  const JobConfig back = parse_job_config(text, j.source);
  EXPECT_EQ(to_yaml(back), text);
  EXPECT_EQ(back.train.seed, j.train.seed);
  EXPECT_EQ(back.optim.lr, j.optim.lr);  // exact: shortest round-trip formatting
  EXPECT_EQ(back.model.norm_eps, j.model.norm_eps);
  EXPECT_EQ(back.data.paths, j.data.paths);
  EXPECT_EQ(back.hardware.device, j.hardware.device);
}

TEST(ConfigToYaml, RoundTripsDefaultsAndAwkwardStrings) {
  JobConfig j;
  j.model.name = "null";  // would read back as YAML null if written plain
  j.train.out_dir = "runs/a: b #c";
  j.optim.lr = 0.1 + 0.2;  // not exactly representable in few digits
  const JobConfig back = parse_job_config(to_yaml(j), "");
  EXPECT_EQ(back.model.name, "null");
  EXPECT_EQ(back.train.out_dir, j.train.out_dir);
  EXPECT_EQ(back.optim.lr, j.optim.lr);
  EXPECT_EQ(to_yaml(back), to_yaml(j));
}

TEST(ConfigToYaml, EnumNamesMatchTheYamlSpelling) {
  EXPECT_STREQ(to_string(NormKind::rmsnorm), "rmsnorm");
  EXPECT_STREQ(to_string(MlpKind::swiglu), "swiglu");
  EXPECT_STREQ(to_string(PositionKind::rope), "rope");
  EXPECT_STREQ(to_string(AttentionKind::bidirectional), "bidirectional");
  EXPECT_STREQ(to_string(RecomputeKind::full), "full");
  EXPECT_STREQ(to_string(ScheduleKind::constant), "constant");
  EXPECT_STREQ(to_string(DataSource::text), "text");
  EXPECT_STREQ(to_string(DeviceKind::cuda), "cuda");
  EXPECT_STREQ(to_string(ObjectiveKind::masked_lm), "masked_lm");
}

// ---- shipped model files ----
TEST(ConfigModels, EveryShippedModelFileLoadsAndValidates) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(source_path("configs/models"))) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const ModelConfig m = load_model_config(entry.path().string());
    EXPECT_NO_THROW(validate(m));
    EXPECT_EQ(m.name, entry.path().stem().string()) << "name: should match the file name";
    // A job using it with a sequence length it supports (and the objective its attention
    // goes with) validates too.
    const std::string objective = m.attention == AttentionKind::bidirectional ? "masked_lm" : "causal_lm";
    EXPECT_NO_THROW(
        parse_job_config("model: " + entry.path().string(), "job.yaml",
                         {"train.seq_len=" + std::to_string(m.max_seq_len), "train.objective=" + objective}));
    ++count;
  }
  EXPECT_GE(count, 4);
}

TEST(ConfigModels, Gpt2SmallHasThePublishedShape) {
  const ModelConfig m = load_model_config(source_path("configs/models/gpt2_124m.yaml"));
  EXPECT_EQ(m.num_layers, 12);
  EXPECT_EQ(m.d_model, 768);
  EXPECT_EQ(m.num_heads, 12);
  EXPECT_EQ(m.kv_heads(), 12);
  EXPECT_EQ(m.vocab_size, 50257);
  EXPECT_EQ(m.max_seq_len, 1024);
  EXPECT_EQ(m.ffn(), 3072);
  EXPECT_EQ(m.norm, NormKind::layernorm);
  EXPECT_EQ(m.mlp, MlpKind::gelu);
  EXPECT_EQ(m.positions, PositionKind::learned);
  EXPECT_TRUE(m.tied_embeddings);
  EXPECT_TRUE(m.bias);
  EXPECT_DOUBLE_EQ(m.norm_eps, 1e-5);
}

TEST(ConfigModels, LlamaTinyIsLlamaShaped) {
  const ModelConfig m = load_model_config(source_path("configs/models/llama_tiny.yaml"));
  EXPECT_EQ(m.norm, NormKind::rmsnorm);
  EXPECT_EQ(m.mlp, MlpKind::swiglu);
  EXPECT_EQ(m.positions, PositionKind::rope);
  EXPECT_EQ(m.num_heads, 8);
  EXPECT_EQ(m.kv_heads(), 2);
  EXPECT_EQ(m.d_model, 256);
  EXPECT_EQ(m.ffn(), 768);
  EXPECT_EQ(m.vocab_size, 256);
  EXPECT_FALSE(m.bias);
  EXPECT_FALSE(m.tied_embeddings);
}

TEST(ConfigModels, TinyTestModelsAreTiny) {
  for (const char* name : {"tiny_gpt", "tiny_llama"}) {
    const ModelConfig m = load_model_config(source_path(std::string("configs/models/") + name + ".yaml"));
    EXPECT_EQ(m.num_layers, 2);
    EXPECT_EQ(m.d_model, 32);
    EXPECT_EQ(m.num_heads, 4);
    EXPECT_EQ(m.vocab_size, 64);
    EXPECT_EQ(m.max_seq_len, 32);
  }
  EXPECT_EQ(load_model_config(source_path("configs/models/tiny_llama.yaml")).kv_heads(), 2);
}
