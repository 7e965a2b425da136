// Every kind of bad input gives one strata::Error line naming the file (with line:column) or
// the --set option, the full key path, and what was expected.
#include "config_test_util.hpp"
#include "strata/config/load.hpp"

using namespace strata::config;
using namespace strata::config::testing;

namespace {
std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { parse_job_config(yaml, "job.yaml", overrides); });
}
}  // namespace

TEST(ConfigErrors, MissingFileNamesFileAndReason) {
  const std::string msg = error_of([] { load_job_config("no_such_config.yaml"); });
  EXPECT_EQ(msg, "cannot open config file 'no_such_config.yaml': No such file or directory");
}

TEST(ConfigErrors, MissingModelFileNamesItAndTheIncludingKey) {
  ScratchDir dir;
  const std::string job = dir.write("job.yaml", "model: models/nope.yaml\n");
  const std::string msg = error_of([&] { load_job_config(job); });
  EXPECT_TRUE(mentions(msg, {job + ":1:8", "model: cannot open model file 'models/nope.yaml'"}));
}

TEST(ConfigErrors, MalformedYamlGivesFileLineAndParserMessage) {
  const std::string msg = parse_error("train:\n  steps: 10\n  seq_len: [1, 2\n");
  EXPECT_TRUE(mentions(msg, {"job.yaml:", "malformed YAML"}));
  EXPECT_TRUE(mentions(parse_error("train:\n  steps: 10\n bad: 1\n"), {"job.yaml:3:", "malformed YAML"}));
}

TEST(ConfigErrors, UnknownKeySuggestsTheClosestField) {
  EXPECT_EQ(parse_error("model:\n  num_layer: 3\n"),
            "job.yaml:2:3: model.num_layer: unknown key in section 'model'; did you mean 'num_layers'?");
  EXPECT_TRUE(mentions(parse_error("parallel:\n  batch_size: 8\n"),
                       {"parallel.batch_size", "did you mean 'micro_batch_size'?"}));
}

TEST(ConfigErrors, UnknownKeyFromAnotherSectionPointsThere) {
  EXPECT_TRUE(
      mentions(parse_error("train:\n  lr: 0.1\n"), {"job.yaml:2:3", "train.lr", "did you mean 'optim.lr'?"}));
}

TEST(ConfigErrors, UnknownKeyWithoutNearMatchListsKnownKeys) {
  EXPECT_TRUE(mentions(parse_error("hardware:\n  gpu_kind: h100\n"),
                       {"hardware.gpu_kind", "known keys: device, peak_tflops, cluster, threads"}));
}

TEST(ConfigErrors, UnknownSectionSuggestsTheClosestSection) {
  EXPECT_TRUE(mentions(parse_error("train:\n  steps: 3\noptimizer:\n  lr: 1\n"),
                       {"job.yaml:3:1", "optimizer: unknown section; did you mean 'optim'?"}));
}

TEST(ConfigErrors, WrongScalarTypeSaysWhatWasExpected) {
  EXPECT_EQ(parse_error("model:\n  num_layers: twelve\n"),
            "job.yaml:2:15: model.num_layers: expected an integer > 0, got 'twelve'");
  EXPECT_TRUE(mentions(parse_error("model:\n  num_layers: 12.5\n"),
                       {"model.num_layers", "expected an integer", "'12.5'"}));
  EXPECT_TRUE(
      mentions(parse_error("model:\n  num_layers: 99999999999\n"), {"model.num_layers", "out of range"}));
  EXPECT_TRUE(mentions(parse_error("optim:\n  lr: fast\n"),
                       {"job.yaml:2:7", "optim.lr: expected a number >= 0, got 'fast'"}));
  EXPECT_TRUE(
      mentions(parse_error("model:\n  bias: maybe\n"), {"model.bias: expected true or false, got 'maybe'"}));
  EXPECT_TRUE(mentions(parse_error("train:\n  seed: -1\n"),
                       {"train.seed: expected a non-negative integer, got '-1'"}));
  EXPECT_TRUE(mentions(parse_error("train:\n  out_dir:\n"),
                       {"train.out_dir: expected a non-empty string, got nothing"}));
}

TEST(ConfigErrors, ListOrMappingWhereScalarExpected) {
  EXPECT_TRUE(
      mentions(parse_error("optim:\n  lr: [0.1, 0.2]\n"), {"job.yaml:2:7", "optim.lr", "got a list"}));
  EXPECT_TRUE(mentions(parse_error("model:\n  d_model: {a: 1}\n"), {"model.d_model", "got a mapping"}));
  EXPECT_TRUE(mentions(parse_error("parallel: 4\n"),
                       {"job.yaml:1:11", "parallel: expected a mapping of parallel settings, got '4'"}));
  EXPECT_TRUE(mentions(parse_error("- 1\n- 2\n"), {"job.yaml:1:1", "expected a mapping of sections"}));
  EXPECT_TRUE(mentions(parse_error("data:\n  paths: [a.txt, {b: 1}]\n"),
                       {"data.paths[1]: expected a string, got a mapping"}));
}

TEST(ConfigErrors, OutOfRangeValuesNameTheRange) {
  EXPECT_TRUE(mentions(parse_error("model:\n  num_layers: 0\n"),
                       {"job.yaml:2:15", "model.num_layers: expected an integer > 0, got '0'"}));
  EXPECT_TRUE(mentions(parse_error("parallel:\n  micro_batch_size: -4\n"),
                       {"parallel.micro_batch_size", "> 0", "'-4'"}));
  EXPECT_TRUE(mentions(parse_error("optim:\n  beta2: 1.0\n"),
                       {"optim.beta2: expected a number in [0, 1), got '1.0'"}));
  EXPECT_TRUE(mentions(parse_error("optim:\n  beta1: -0.1\n"), {"optim.beta1", "in [0, 1)"}));
  EXPECT_TRUE(
      mentions(parse_error("optim:\n  lr: -3e-4\n"), {"optim.lr: expected a number >= 0, got '-3e-4'"}));
  EXPECT_TRUE(mentions(parse_error("model:\n  norm_eps: 0\n"), {"model.norm_eps", "> 0"}));
  EXPECT_TRUE(mentions(parse_error("parallel:\n  dp: -1\n"), {"parallel.dp", ">= 0"}));
  EXPECT_TRUE(mentions(parse_error("optim:\n  lr: .nan\n"), {"optim.lr", "expected a number"}));
}

TEST(ConfigErrors, BadEnumListsTheAllowedNames) {
  EXPECT_EQ(parse_error("model:\n  norm: batchnorm\n"),
            "job.yaml:2:9: model.norm: expected one of layernorm|rmsnorm, got 'batchnorm'");
  EXPECT_TRUE(mentions(parse_error("model:\n  mlp: SwiGLU\n"),
                       {"model.mlp", "gelu|swiglu", "did you mean 'swiglu'?"}));
  EXPECT_TRUE(
      mentions(parse_error("optim:\n  schedule: wsd\n"), {"optim.schedule", "cosine|constant|linear"}));
  EXPECT_TRUE(mentions(parse_error("hardware:\n  device: rocm\n"), {"hardware.device", "cpu|cuda"}));
  EXPECT_TRUE(mentions(parse_error("data:\n  source: parquet\n"), {"data.source", "synthetic|text|hdf5"}));
  EXPECT_EQ(parse_error("parallel:\n  cp_mode: alltoall\n"),
            "job.yaml:2:12: parallel.cp_mode: expected one of ring|ulysses, got 'alltoall'");
}

TEST(ConfigErrors, DuplicateKeyIsRejected) {
  EXPECT_TRUE(mentions(parse_error("train:\n  steps: 1\n  steps: 2\n"),
                       {"job.yaml:3:3", "train.steps: duplicate key"}));
}

TEST(ConfigErrors, ErrorsInsideAnIncludedModelFileNameThatFile) {
  ScratchDir dir;
  const std::string model = dir.write("models/m.yaml", "num_layers: 2\nd_model: wide\n");
  const std::string job = dir.write("job.yaml", "model: models/m.yaml\n");
  EXPECT_TRUE(mentions(error_of([&] { load_job_config(job); }),
                       {model + ":2:10", "model.d_model: expected an integer > 0, got 'wide'"}));
  dir.write("models/m.yaml", "num_layers: 2\nnum_hedas: 4\n");
  EXPECT_TRUE(
      mentions(error_of([&] { load_job_config(job); }), {model + ":2:1", "did you mean 'num_heads'?"}));
  dir.write("models/m.yaml", "num_layers: [2\n");
  EXPECT_TRUE(mentions(error_of([&] { load_job_config(job); }), {model + ":", "malformed YAML"}));
}

// ---- --set ----
TEST(ConfigErrors, UnknownOverrideKeyNamesTheOption) {
  EXPECT_EQ(
      parse_error("", {"model.num_layer=3"}),
      "--set model.num_layer=3: model.num_layer: unknown key in section 'model'; did you mean 'num_layers'?");
  EXPECT_TRUE(mentions(parse_error("", {"trian.steps=3"}),
                       {"--set trian.steps=3", "trian: unknown section; did you mean 'train'?"}));
  EXPECT_TRUE(mentions(parse_error("", {"train.steps.x=3"}),
                       {"--set train.steps.x=3", "train.steps is a single setting"}));
  EXPECT_TRUE(mentions(parse_error("", {"optim={lr: 0.1, betta1: 0.5}"}),
                       {"--set optim={lr: 0.1, betta1: 0.5}", "optim.betta1", "did you mean 'beta1'?"}));
}

TEST(ConfigErrors, MalformedOverrideNamesTheOption) {
  EXPECT_TRUE(mentions(parse_error("", {"train.steps"}), {"--set train.steps: expected section.key=value"}));
  EXPECT_TRUE(
      mentions(parse_error("", {"train..steps=1"}), {"--set train..steps=1: expected section.key=value"}));
  EXPECT_TRUE(mentions(parse_error("", {"data.paths=[a.txt"}),
                       {"--set data.paths=[a.txt: data.paths: malformed value"}));
  EXPECT_TRUE(mentions(parse_error("", {"optim=0.1"}),
                       {"--set optim=0.1: optim: expected a mapping of optim settings"}));
}

TEST(ConfigErrors, BadOverrideValueNamesTheOptionNotTheFile) {
  const std::string msg = parse_error("model:\n  num_layers: 2\n", {"model.num_layers=twelve"});
  EXPECT_EQ(msg, "--set model.num_layers=twelve: model.num_layers: expected an integer > 0, got 'twelve'");
  EXPECT_TRUE(
      mentions(parse_error("", {"data.paths=[a.txt, [b.txt]]"}),
               {"--set data.paths=[a.txt, [b.txt]]", "data.paths[1]: expected a string, got a list"}));
  EXPECT_TRUE(
      mentions(parse_error("", {"model=no_such_model.yaml"}),
               {"--set model=no_such_model.yaml: model: cannot open model file 'no_such_model.yaml'"}));
}

TEST(ConfigErrors, CrossFieldErrorsFromFilesNameTheFile) {
  EXPECT_EQ(parse_error("model:\n  d_model: 768\n  num_heads: 10\n"),
            "job.yaml: model.d_model (768) must be divisible by model.num_heads (10)");
}

TEST(ConfigErrors, ModelLoaderRejectsAJobFile) {
  ScratchDir dir;
  const std::string job = dir.write("job.yaml", "model:\n  num_layers: 2\ntrain:\n  steps: 3\n");
  EXPECT_TRUE(mentions(error_of([&] { load_model_config(job); }), {job, "looks like a job config"}));
  EXPECT_TRUE(mentions(error_of([&] { load_model_config(dir.path().string() + "/none.yaml"); }),
                       {"cannot open model file", "none.yaml", "No such file or directory"}));
  const std::string scalar = dir.write("scalar.yaml", "gpt2\n");
  EXPECT_TRUE(mentions(error_of([&] { load_model_config(scalar); }),
                       {scalar, "expected a mapping of model settings"}));
}

TEST(ConfigErrors, GuardSectionKeysParseAndTheirErrorsNameThem) {
  const JobConfig j = parse_job_config(
      "guard:\n  loss_spike_factor: 4\n  rollback_after: 2\nckpt:\n  async: false\n", "job.yaml");
  EXPECT_EQ(j.guard.loss_spike_factor, 4);
  EXPECT_EQ(j.guard.rollback_after, 2);
  EXPECT_FALSE(j.ckpt.async);
  EXPECT_TRUE(mentions(parse_error("guard:\n  loss_spike: 3\n"),
                       {"job.yaml:2:3: guard.loss_spike: unknown key in section 'guard'",
                        "did you mean 'loss_spike_factor'?"}));
  EXPECT_TRUE(mentions(parse_error("guard:\n  loss_spike_factor: 0.9\n"),
                       {"guard.loss_spike_factor (0.9) must be 0"}));
  EXPECT_TRUE(mentions(parse_error("", {"ckpt.async=maybe"}), {"ckpt.async", "true or false"}));
}
