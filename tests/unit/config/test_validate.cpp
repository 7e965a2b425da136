// validate(): cross-field rules, range rules on configs built in code, and ModelConfig::ffn().
#include "config_test_util.hpp"
#include "strata/config/batch.hpp"
#include "strata/config/capabilities.hpp"
#include "strata/config/load.hpp"

using namespace strata::config;
using namespace strata::config::testing;

namespace {
std::string invalid(const JobConfig& j) {
  return error_of([&] { validate(j); });
}
}  // namespace

TEST(ConfigValidate, DefaultConfigIsValid) { EXPECT_NO_THROW(validate(JobConfig{})); }

TEST(ConfigValidate, HeadsMustDivideWidth) {
  JobConfig j;
  j.model.d_model = 768;
  j.model.num_heads = 10;
  EXPECT_EQ(invalid(j), "model.d_model (768) must be divisible by model.num_heads (10)");
  j.source = "run.yaml";
  EXPECT_EQ(invalid(j), "run.yaml: model.d_model (768) must be divisible by model.num_heads (10)");
}

TEST(ConfigValidate, KvHeadsMustDivideHeads) {
  JobConfig j;
  j.model.num_heads = 4;
  j.model.num_kv_heads = 3;
  EXPECT_TRUE(mentions(invalid(j), {"model.num_heads (4) must be a multiple of model.num_kv_heads (3)"}));
  j.model.num_kv_heads = 8;
  EXPECT_TRUE(mentions(invalid(j), {"model.num_kv_heads (8)"}));
}

TEST(ConfigValidate, RopeNeedsAnEvenHeadSize) {
  JobConfig j;
  j.model.d_model = 36;
  j.model.num_heads = 4;  // head size 9
  EXPECT_NO_THROW(validate(j));
  j.model.positions = PositionKind::rope;
  EXPECT_TRUE(mentions(invalid(j), {"model.positions is rope", "(36 / 4 = 9) must be even"}));
}

TEST(ConfigValidate, SeqLenMustFitTheModel) {
  JobConfig j;
  j.train.seq_len = 256;
  j.model.max_seq_len = 128;
  EXPECT_EQ(invalid(j), "train.seq_len (256) must not exceed model.max_seq_len (128)");
}

TEST(ConfigValidate, WarmupMustFitTheDecay) {
  JobConfig j;
  j.train.steps = 50;
  j.optim.warmup_steps = 100;
  EXPECT_NO_THROW(validate(j));  // a run shorter than its warm-up just warms up throughout
  j.optim.decay_steps = 200;
  EXPECT_NO_THROW(validate(j));
  j.optim.decay_steps = 80;
  EXPECT_TRUE(mentions(invalid(j), {"optim.warmup_steps (100)", "(optim.decay_steps = 80)"}));
  j.optim.schedule = ScheduleKind::constant;  // nothing decays: any warmup is fine
  EXPECT_NO_THROW(validate(j));
}

TEST(ConfigValidate, GlobalBatchMustBeAMultipleOfMicroBatchTimesDp) {
  JobConfig j;
  j.parallel.micro_batch_size = 4;
  j.parallel.dp = 2;
  j.parallel.global_batch_size = 12;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.global_batch_size (12)",
                                    "parallel.micro_batch_size x parallel.dp (4 x 2 = 8)"}));
  j.parallel.global_batch_size = 16;
  EXPECT_NO_THROW(validate(j));
  j.parallel.dp = 0;  // derived later: only the micro-batch is known
  j.parallel.global_batch_size = 10;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.global_batch_size (10)", "parallel.micro_batch_size (4)"}));
}

TEST(ConfigValidate, MinLrMustNotExceedLr) {
  JobConfig j;
  j.optim.lr = 1e-4;
  j.optim.min_lr = 1e-3;
  EXPECT_EQ(invalid(j), "optim.min_lr (0.001) must not exceed optim.lr (1e-04)");
}

TEST(ConfigValidate, TensorParallelMustSplitHeadsAndMlp) {
  JobConfig j;  // 4 heads, d_model 64
  j.parallel.tp = 3;
  EXPECT_TRUE(mentions(invalid(j), {"model.num_heads (4) must be divisible by parallel.tp (3)"}));
  j.parallel.tp = 2;
  j.model.num_kv_heads = 1;
  EXPECT_TRUE(mentions(invalid(j), {"model.num_kv_heads (1) must be divisible by parallel.tp (2)"}));
}

TEST(ConfigValidate, PipelineNeedsALayerPerStage) {
  JobConfig j;
  j.parallel.pp = 4;  // 2 layers
  EXPECT_TRUE(
      mentions(invalid(j),
               {"model.num_layers (2) must be at least parallel.pp x parallel.virtual_stages (4 x 1 = 4)"}));
}

TEST(ConfigValidate, PipelineOptionsAreConsistent) {
  JobConfig j;
  j.model.num_layers = 4;
  j.parallel.pp = 2;
  j.parallel.virtual_stages = 2;  // without the interleaved schedule
  EXPECT_TRUE(mentions(invalid(j),
                       {"parallel.virtual_stages (2) > 1 goes with parallel.schedule: interleaved_1f1b"}));
  j.parallel.schedule = PipelineSchedule::interleaved_1f1b;
  EXPECT_NO_THROW(validate(j));
  j.parallel.layers_per_stage = {1, 1, 1};
  EXPECT_TRUE(
      mentions(invalid(j),
               {"parallel.layers_per_stage has 3 entries summing to 3; expected pp x virtual_stages = 4"}));
  j.parallel.layers_per_stage = {1, 2, 0, 1};
  EXPECT_TRUE(mentions(invalid(j), {"parallel.layers_per_stage"}));
  j.parallel.layers_per_stage = {};
  j.parallel.zero_stage = 4;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.zero_stage (4) must be 0, 1, 2 or 3"}));
  j.parallel.zero_stage = 2;
  j.parallel.grad_reduce_dtype = ReduceDType::bf16;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.zero_stage 2 reduces gradients in fp32"}));
}

TEST(ConfigValidate, ZeroBubbleScheduleKeepsActivationsForItsWeightPasses) {
  const JobConfig parsed =
      parse_job_config("parallel: {pp: 2, schedule: zb_h1}\nmodel: {num_layers: 4}\n", "job.yaml");
  EXPECT_EQ(parsed.parallel.schedule, PipelineSchedule::zb_h1);
  EXPECT_STREQ(to_string(PipelineSchedule::zb_h1), "zb_h1");
  JobConfig j = parsed;
  EXPECT_NO_THROW(validate(j));
  j.model.recompute = RecomputeKind::full;
  EXPECT_TRUE(mentions(invalid(j), {"job.yaml", "parallel.schedule: zb_h1", "model.recompute: full"}));
  j.model.recompute = RecomputeKind::none;
  j.parallel.virtual_stages = 2;
  EXPECT_TRUE(
      mentions(invalid(j), {"parallel.virtual_stages (2) > 1 goes with parallel.schedule: interleaved_1f1b",
                            "schedule is zb_h1"}));
}

TEST(ConfigValidate, TextDataNeedsPathsAndAByteVocabulary) {
  JobConfig j;
  j.data.source = DataSource::text;
  EXPECT_TRUE(mentions(invalid(j), {"data.source is text but data.paths is empty"}));
  j.data.paths = {"a.txt"};
  EXPECT_NO_THROW(validate(j));
  j.model.vocab_size = 64;
  EXPECT_TRUE(mentions(invalid(j), {"model.vocab_size (64) must be at least 256"}));
  j.model.vocab_size = 256;
  j.data.paths = {""};
  EXPECT_TRUE(mentions(invalid(j), {"data.paths", "non-empty"}));
}

TEST(ConfigValidate, RangesAreCheckedOnConfigsBuiltInCode) {
  JobConfig j;
  j.model.num_layers = 0;
  EXPECT_EQ(invalid(j), "model.num_layers: expected an integer > 0, got 0");
  j = JobConfig{};
  j.parallel.tp = 0;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.tp: expected an integer > 0, got 0"}));
  j = JobConfig{};
  j.optim.beta2 = 1.0;
  EXPECT_TRUE(mentions(invalid(j), {"optim.beta2: expected a number in [0, 1), got 1"}));
  j = JobConfig{};
  j.optim.lr = -1;
  EXPECT_TRUE(mentions(invalid(j), {"optim.lr: expected a number >= 0, got -1"}));
  j = JobConfig{};
  j.train.out_dir = "";
  EXPECT_TRUE(mentions(invalid(j), {"train.out_dir: expected a non-empty string"}));
}

TEST(ConfigValidate, FfnFollowsGeluAndLlamaRules) {
  ModelConfig m;
  m.d_model = 768;
  EXPECT_EQ(m.ffn(), 3072);  // GELU: 4d
  m.mlp = MlpKind::swiglu;
  m.d_model = 4096;
  EXPECT_EQ(m.ffn(), 11008);  // LLaMA-7B
  m.d_model = 8192;
  EXPECT_EQ(m.ffn(), 22016);  // LLaMA-65B (multiple_of 256)
  m.d_model = 256;
  EXPECT_EQ(m.ffn(), 768);  // 682 rounded up
  m.ffn_hidden = 100;
  EXPECT_EQ(m.ffn(), 100);  // explicit wins
}

TEST(ConfigValidate, TheObjectiveFixesTheAttentionMask) {
  JobConfig j;
  j.train.objective = ObjectiveKind::masked_lm;  // default attention: causal
  EXPECT_TRUE(mentions(invalid(j), {"train.objective is masked_lm", "model.attention: bidirectional"}));
  j.model.attention = AttentionKind::bidirectional;
  EXPECT_NO_THROW(validate(j));
  j.train.objective = ObjectiveKind::causal_lm;
  EXPECT_TRUE(mentions(invalid(j), {"train.objective is causal_lm", "it is bidirectional"}));
}

TEST(ConfigValidate, MaskingFractionsAndWarmupStartAreChecked) {
  JobConfig j;
  j.train.objective = ObjectiveKind::masked_lm;
  j.model.attention = AttentionKind::bidirectional;
  j.train.mlm_mask_fraction = 0.8;
  j.train.mlm_random_fraction = 0.3;
  EXPECT_TRUE(mentions(invalid(j), {"train.mlm_mask_fraction + train.mlm_random_fraction (0.8 + 0.3)"}));
  j.train.mlm_random_fraction = 0.1;
  j.train.mlm_probability = 0;
  EXPECT_TRUE(mentions(invalid(j), {"train.mlm_probability (0) must be > 0"}));
  j.train.mlm_probability = 0.15;
  j.train.seq_len_warmup = 1000;
  j.train.seq_len_warmup_start = j.train.seq_len + 1;
  EXPECT_TRUE(mentions(invalid(j), {"train.seq_len_warmup_start (129) must not exceed train.seq_len (128)"}));
  j.eval.windows = -1;
  j.train.seq_len_warmup_start = 8;
  EXPECT_TRUE(mentions(invalid(j), {"eval.windows: expected an integer >= 0, got -1"}));
}

TEST(ConfigValidate, HardwareClusterMustNameAFileWithTheJobsPeak) {
  JobConfig j;
  j.hardware.cluster = "local";  // configs/clusters/local.yaml: fp32 peak 0.232
  EXPECT_NO_THROW(validate(j));
  j.hardware.cluster = "nosuch";
  EXPECT_TRUE(mentions(invalid(j), {"hardware.cluster: unknown cluster 'nosuch'", "known: "}));
  // A CPU cluster file has no bf16 peak for a GPU job.
  j.hardware.cluster = "cpu_node";
  j.hardware.device = DeviceKind::cuda;
  EXPECT_TRUE(mentions(invalid(j), {"hardware.cluster: ", "cpu_node.yaml has no peak_tflops_bf16"}));
}

TEST(ConfigValidate, BatchResolvesAsTheTrainerDoes) {
  ParallelConfig p;
  p.micro_batch_size = 4;
  p.global_batch_size = 16;
  const BatchShape b = resolve_batch(p, 2);
  EXPECT_EQ(b.global, 16);
  EXPECT_EQ(b.microbatches, 2);
  EXPECT_EQ(error_of([&] { resolve_batch(p, 3); }),
            "parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (4 x 3 = 12)");
  p.global_batch_size = 0;
  p.num_microbatches = 8;
  EXPECT_EQ(resolve_batch(p, 3).global, 96);  // weak scaling: the batch grows with dp
}

TEST(ConfigValidate, GuardKeysAreCheckedAndNamed) {
  JobConfig j;
  EXPECT_NO_THROW(validate(j));  // defaults: NaN/Inf steps skipped, no spike test, rollback after 5
  j.guard.loss_spike_factor = 0.5;
  EXPECT_TRUE(mentions(invalid(j),
                       {"guard.loss_spike_factor (0.5) must be 0 (no loss-spike test) or greater than 1"}));
  j.guard.loss_spike_factor = 1;
  EXPECT_TRUE(mentions(invalid(j), {"guard.loss_spike_factor (1)"}));
  j.guard.loss_spike_factor = 3;
  EXPECT_NO_THROW(validate(j));
  j.guard.loss_window = 0;
  EXPECT_TRUE(mentions(invalid(j), {"guard.loss_window: expected an integer > 0, got 0"}));
  j.guard.loss_window = 50;
  j.guard.rollback_after = -1;
  EXPECT_TRUE(mentions(invalid(j), {"guard.rollback_after: expected an integer >= 0, got -1"}));
  j.guard.rollback_after = 0;  // never roll back: keep skipping
  EXPECT_NO_THROW(validate(j));
  j.guard.max_rollbacks = -2;
  EXPECT_TRUE(mentions(invalid(j), {"guard.max_rollbacks: expected an integer >= 0, got -2"}));
  j.guard.max_rollbacks = 3;
  j.ckpt.keep = -1;
  EXPECT_TRUE(mentions(invalid(j), {"ckpt.keep: expected an integer >= 0, got -1"}));
}

TEST(ConfigValidate, ContextParallelNeedsEvenChunksAndAFixedLength) {
  JobConfig j;
  j.parallel.cp = 4;
  j.train.seq_len = 128;
  EXPECT_NO_THROW(validate(j));
  j.train.seq_len = 100;  // not a multiple of 2 x cp = 8
  EXPECT_TRUE(mentions(invalid(j), {"parallel.cp = 4", "train.seq_len (100) must be a multiple of 8"}));
  j.train.seq_len = 128;
  j.train.seq_len_warmup = 1000;
  EXPECT_TRUE(mentions(invalid(j), {"train.seq_len_warmup (1000)", "parallel.cp = 4"}));
  j.train.seq_len_warmup = 0;
  j.parallel.cp = 0;
  EXPECT_TRUE(mentions(invalid(j), {"parallel.cp"}));
  j.parallel.cp = 2;
  j.hardware.device = DeviceKind::cuda;
  j.model.d_model = 768;
  j.model.num_heads = 12;  // head size 64: the GPU's attention and its ring-attention blocks run it
  EXPECT_NO_THROW(validate(j));
  j.model.num_heads = 8;  // head size 96: neither does
  EXPECT_TRUE(mentions(invalid(j), {"head size 96"}));
  j.parallel.cp = 1;
  EXPECT_TRUE(mentions(invalid(j), {"head size 96"}));
}

// parallel.cp_mode: ulysses splits each TP rank's heads and KV heads over cp (whole GQA groups
// per rank), and runs on both backends (the GPU's flash attention and NCCL's all-to-all), as
// the ring does (the flash kernel's block form).
TEST(ConfigValidate, UlyssesNeedsTheHeadsOfATpRankDivisibleByCpAndRunsOnTheGpu) {
  JobConfig j;
  EXPECT_EQ(j.parallel.cp_mode, CpMode::ring);  // the default
  j.model.d_model = 64;
  j.model.num_heads = 8;
  j.model.num_kv_heads = 4;
  j.parallel.cp = 2;
  j.parallel.tp = 2;
  j.parallel.cp_mode = CpMode::ulysses;
  EXPECT_NO_THROW(validate(j));  // 4 heads and 2 KV heads per TP rank, over 2 cp ranks
  j.parallel.cp = 4;             // 2 KV heads per TP rank do not split over 4
  EXPECT_TRUE(mentions(invalid(j), {"parallel.cp_mode: ulysses", "parallel.cp = 4",
                                    "model.num_heads / parallel.tp = 8 / 2 = 4",
                                    "model.num_kv_heads / parallel.tp = 4 / 2 = 2", "divisible by 4"}));
  j.parallel.cp_mode = CpMode::ring;  // the ring splits the sequence only
  EXPECT_NO_THROW(validate(j));
  j.parallel.tp = 1;
  j.parallel.cp = 2;
  j.parallel.cp_mode = CpMode::ulysses;
  j.model.d_model = 768;
  j.model.num_heads = 12;  // head size 64
  j.model.num_kv_heads = 0;
  j.hardware.device = DeviceKind::cuda;
  EXPECT_NO_THROW(validate(j));
  j.parallel.cp_mode = CpMode::ring;
  EXPECT_NO_THROW(validate(j));
}

TEST(ConfigValidate, ZeroTwoAndThreeRunWithContextParallelAndZeroBubble) {
  JobConfig j;
  j.model.num_layers = 4;
  j.parallel.dp = 2;
  j.parallel.zero_stage = 2;
  EXPECT_NO_THROW(validate(j));
  j.parallel.cp = 2;  // each layer's gradients are summed over cp before the dp reduce-scatter
  EXPECT_NO_THROW(validate(j));
  j.parallel.zero_stage = 3;
  EXPECT_NO_THROW(validate(j));
  j.parallel.cp = 1;
  j.parallel.pp = 2;
  j.parallel.schedule = PipelineSchedule::zb_h1;  // each layer's unit reduced after its W pass
  for (const int zero : {1, 2, 3}) {
    j.parallel.zero_stage = zero;
    EXPECT_NO_THROW(validate(j)) << "zero_stage " << zero;
    EXPECT_TRUE(unsupported(j).empty()) << "zero_stage " << zero;
  }
  j.parallel.dp = 0;  // derived from the world size at launch
  EXPECT_NO_THROW(validate(j));
  j.hardware.device = DeviceKind::cuda;  // the same engine code over the CUDA backend
  j.model.d_model = 768;
  j.model.num_heads = 12;
  for (const int zero : {2, 3}) {
    j.parallel.zero_stage = zero;
    EXPECT_NO_THROW(validate(j)) << "zero_stage " << zero;
    EXPECT_TRUE(unsupported(j).empty()) << "zero_stage " << zero;
  }
}
