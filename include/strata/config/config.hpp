// Typed configuration. Each component owns its struct (torchtitan's lesson: no component
// receives the whole job config); JobConfig only groups them for loading.
//
// Loading (config/load.hpp): YAML file -> `model:` may name a model file -> `--set a.b=v`
// overrides -> typed structs -> validation. Every error names the file (or the --set
// option), the key path and what was expected.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::config {

enum class NormKind { layernorm, rmsnorm };
enum class MlpKind { gelu, swiglu };
enum class PositionKind { learned, rope };
enum class AttentionKind { causal, bidirectional };
enum class RecomputeKind { none, full };

struct ModelConfig {
  std::string name = "custom";
  int num_layers = 2;
  int d_model = 64;
  int num_heads = 4;
  int num_kv_heads = 0;  // 0: same as num_heads (no GQA)
  int ffn_hidden = 0;    // 0: 4*d_model for GELU, LLaMA's 2/3*4*d rounded to 256 for SwiGLU
  int vocab_size = 256;
  int max_seq_len = 128;
  NormKind norm = NormKind::layernorm;
  MlpKind mlp = MlpKind::gelu;
  PositionKind positions = PositionKind::learned;
  AttentionKind attention = AttentionKind::causal;
  bool tied_embeddings = true;
  bool bias = true;  // biases in linear layers and LayerNorm
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  double init_std = 0.02;
  RecomputeKind recompute = RecomputeKind::none;

  int kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int head_size() const { return d_model / num_heads; }
  int ffn() const;  // resolved ffn_hidden
};

enum class PipelineSchedule { gpipe, one_f_one_b, interleaved_1f1b, zb_h1 };
enum class ReduceDType { fp32, bf16 };  // data type of the DP gradient reduction on GPUs
// How context parallelism computes attention (docs/parallelism.md): ring (K/V blocks passed
// around the cp ranks) or ulysses (all-to-all to whole sequences of 1/cp of the heads and back).
enum class CpMode { ring, ulysses };

struct ParallelConfig {
  int tp = 1;
  int pp = 1;
  int dp = 0;  // 0: derived as world_size / (tp * pp)
  int micro_batch_size = 4;
  int global_batch_size = 0;  // 0: micro_batch_size * dp * num_microbatches
  int num_microbatches = 0;   // per DP rank and step; 0: global_batch_size / (micro_batch_size * dp)
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  int virtual_stages = 1;             // model chunks per pipeline rank (interleaved_1f1b)
  std::vector<int> layers_per_stage;  // empty: layers split evenly over pp * virtual_stages
  bool sequence_parallel = false;
  int zero_stage =
      0;  // 0: replicated optimizer; 1: optimizer state sharded over DP; 2: and gradients; 3: and parameters
  double bucket_mb = 25.0;                            // gradient all-reduce / reduce-scatter bucket size
  ReduceDType grad_reduce_dtype = ReduceDType::fp32;  // GPU: reduce fp32 gradients as fp32 or bf16
  // Context parallelism: each sequence split over cp ranks in 2 cp chunks (rank r holds chunks
  // r and 2 cp - 1 - r), ring attention over them (docs/parallelism.md). World = tp x cp x dp x pp.
  int cp = 1;
  CpMode cp_mode = CpMode::ring;  // ulysses needs heads / tp and KV heads / tp divisible by cp
};

enum class ScheduleKind { cosine, constant, linear };

struct OptimConfig {
  double lr = 6e-4;
  double min_lr = 6e-5;  // the floor the schedule decays to
  int warmup_steps = 100;
  int decay_steps = 0;  // 0: train.steps
  ScheduleKind schedule = ScheduleKind::cosine;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_embeddings = false;  // weight decay on the embedding tables
  double grad_clip = 1.0;         // global-norm clip; 0 disables
};

// The pre-training objective (docs/objectives.md). It is a training setting, not a model one:
// the same bidirectional model could be trained either way, but masked_lm requires
// model.attention: bidirectional and causal_lm model.attention: causal (validate()).
enum class ObjectiveKind { causal_lm, masked_lm };

struct TrainConfig {
  int steps = 100;
  std::uint64_t seed = 1234;
  int seq_len = 128;
  std::string out_dir = "runs/default";
  int log_interval = 10;
  bool rank_logs = false;  // every rank writes <out_dir>/rank<N>.log
  // Where to start: "none" (fresh), "auto" (ckpt.dir's latest checkpoint when there is one,
  // else fresh) or the path of a checkpoint file or directory (must exist).
  std::string resume = "none";
  ObjectiveKind objective = ObjectiveKind::causal_lm;
  // Masked LM (BERT, Devlin et al. 2019, sec. 3.1): each position is chosen with probability
  // mlm_probability; a chosen position's input becomes [MASK] with probability
  // mlm_mask_fraction, a random token with mlm_random_fraction, else stays unchanged. The
  // loss covers the chosen positions only.
  double mlm_probability = 0.15;
  double mlm_mask_fraction = 0.8;
  double mlm_random_fraction = 0.1;
  // Sequence-length warm-up: over the first seq_len_warmup tokens the sequence length grows
  // linearly from seq_len_warmup_start (0: max(8, seq_len / 8)) to seq_len, in multiples of 8.
  // 0: off.
  std::uint64_t seq_len_warmup = 0;
  int seq_len_warmup_start = 0;
};

// Evaluation during training: validation loss and perplexity on a fixed set of held-out
// windows (the first `windows` of the source's validation windows).
struct EvalConfig {
  int interval = 0;  // every N steps (and at the end); 0: only at the end
  int windows = 64;  // held-out windows evaluated; 0: no evaluation at all
};

// Checkpoints (docs/checkpoints.md): one logical HDF5 file per saved step.
struct CheckpointConfig {
  std::string dir;   // "": <train.out_dir>/checkpoints
  int interval = 0;  // save every N steps; 0: only at the end (and on SIGTERM/SIGUSR1)
  int keep = 3;      // published checkpoints kept; older ones are deleted; 0: keep all
  bool save_at_end = true;
  // Write in the background: the step boundary costs a copy of the state to host memory, a
  // thread writes and publishes it while training goes on. false: the step loop waits.
  bool async = true;
};

// The bad-step guard (docs/checkpoints.md, "Bad steps"). A step is bad when its loss or global
// gradient norm is NaN/Inf, or its loss exceeds loss_spike_factor x the running mean of the
// good steps' losses; a bad step is skipped (no optimizer update). After rollback_after bad
// steps in a row the run goes back to its last checkpoint and skips the data since it.
struct GuardConfig {
  double loss_spike_factor = 0;  // 0: no spike test (NaN/Inf steps are still skipped); else > 1
  int loss_window = 100;         // good steps the running mean covers (weight 1/window once full)
  int loss_warmup = 20;          // good steps before the spike test applies
  int rollback_after = 5;        // consecutive bad steps that trigger a rollback; 0: never (keep skipping)
  int max_rollbacks = 3;  // rollbacks in the whole run (requeues included) before it stops with an error
};

enum class DataSource { synthetic, text, hdf5 };

// One token dataset written by `strata prepare` and its share of the blend.
struct DatasetSpec {
  std::string path;
  double weight = 1.0;  // relative; the weights are normalised over the list
  friend bool operator==(const DatasetSpec&, const DatasetSpec&) = default;
};

// One point of a mixture schedule (data.schedule): the blend weights once `tokens` training
// tokens (global samples x train.seq_len) have been consumed; linear in between, constant after
// the last point.
struct MixturePoint {
  std::uint64_t tokens = 0;
  std::vector<double> weights;  // one per data.datasets entry, >= 0, not all 0
  friend bool operator==(const MixturePoint&, const MixturePoint&) = default;
};

// What orders the windows of each dataset from easy to hard (data.curriculum).
enum class CurriculumOrder { none, length, quality, scores };
// How fast the pool of windows grows (Platanios et al. 2019, sec. 3.2: competence).
enum class CurriculumPacing { linear, root, step };

struct DataConfig {
  DataSource source = DataSource::synthetic;
  std::vector<std::string> paths;     // text: files read as bytes (byte-level vocabulary of 256)
  std::vector<DatasetSpec> datasets;  // hdf5: token datasets blended by weight
  std::string tokenizer;              // hdf5: the model's tokenizer spec; "": the datasets' own
  double valid_fraction = 0.0;        // hdf5: windows held out for validation, per dataset
  int max_epochs = 1;                 // hdf5: warn when a dataset is repeated beyond this; 0: never
  int prefetch = 4;                   // micro-batches read ahead by the loader thread
  // Curriculum (docs/data-pipeline.md, "Quality and curriculum"); hdf5 only. Both are pure
  // functions of the global sample index, so resuming or changing the DP size keeps the stream.
  std::vector<MixturePoint> schedule;  // blend weights over training; empty: data.datasets' weights
  CurriculumOrder curriculum = CurriculumOrder::none;  // difficulty of a window within its dataset
  std::vector<std::string>
      curriculum_scores;  // curriculum: scores, one text file per dataset (a number per document)
  CurriculumPacing curriculum_pacing = CurriculumPacing::root;
  double curriculum_start = 0.1;        // competence at the start: the easiest share of windows drawn from
  std::uint64_t curriculum_tokens = 0;  // tokens until every window is in the pool (competence 1)
  int curriculum_stages = 4;            // pacing: step, the number of equal steps
  bool curriculum_reverse = false;      // hard to easy (an anti-curriculum, for comparison)
};

enum class DeviceKind { cpu, cuda };

struct HardwareConfig {
  DeviceKind device = DeviceKind::cpu;
  double peak_tflops = 0.0;  // per rank; 0: from `cluster`, else measured (CPU) or looked up (GPU)
  std::string cluster;       // cluster file (configs/clusters name or path) whose peak MFU uses; "": none
  int threads = 0;           // BLAS/compute threads per rank; 0: cores / local ranks
};

struct JobConfig {
  std::string source;  // where it was loaded from, for messages
  ModelConfig model;
  ParallelConfig parallel;
  OptimConfig optim;
  TrainConfig train;
  CheckpointConfig ckpt;
  GuardConfig guard;
  EvalConfig eval;
  DataConfig data;
  HardwareConfig hardware;
};

}  // namespace strata::config
