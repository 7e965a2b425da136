// The training engine: this rank's model chunks, the executor of a pipeline schedule, the
// data-parallel gradient reduction and the optimizer — one interface (Engine) implemented
// once over a backend (PipelineEngine<B>, pipeline.hpp), so every layout the CPU tests prove
// equal to one rank (tensor, sequence, pipeline with virtual stages, data parallelism,
// ZeRO-1) runs on GPUs with the same code.
//
// Parallelism is applied in a fixed order (torchtitan's habit), here and nowhere else
// (plan_engine):
//   1. tensor-parallel plan  — each chunk holds its TP shard (model/parameters.cpp)
//   2. pipeline split        — layers to virtual stages: virtual stage vs = chunk * pp + stage,
//                              layers split evenly (or parallel.layers_per_stage); the first
//                              virtual stage has the embedding, the last the output layer
//   3. data-parallel shards  — one ShardingPlan per chunk over its flat gradients
//   4. allocate              — every plan allocated by the backend at construction
//   5. initialise            — from the counter RNG by global name and index
// plan_engine is a pure function of the config, the grid's shape, this rank's coordinates
// and the backend's spec: `strata train --dry-run` and the planner print it (any backend, in
// any build, without allocating), and the engine allocates exactly it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/model/stage.hpp"
#include "strata/parallel/distributed_optimizer.hpp"
#include "strata/parallel/schedule.hpp"

namespace strata::parallel {

// Layers of each virtual stage (pp * virtual_stages entries).
std::vector<int> layers_per_virtual_stage(const config::ModelConfig& model,
                                          const config::ParallelConfig& parallel);

struct StepStats {
  model::LossSum loss;         // summed over this rank's micro-batches (last stage only)
  double compute_s = 0;        // forward/backward kernels
  double pipeline_wait_s = 0;  // waiting for activations/gradients of neighbouring stages
  double dp_wait_s = 0;        // waiting for gradient reductions after backward
};

// One model chunk of this rank, planned.
struct ChunkPlan {
  int virtual_stage = 0;
  model::ChunkPlacement place;
  int slots = 1;  // micro-batches in flight (activation slots)
  model::StagePlan stage;
  ShardingPlan sharding;
  OptimizerMemory optimizer;
};

struct EnginePlan {
  comm::GridShape shape;
  comm::GridCoord coord;
  model::BackendSpec spec;
  int micro_batch_size = 1, seq_len = 0, microbatches = 1;
  config::PipelineSchedule schedule_kind{};
  std::vector<PipelineAction> schedule;
  std::vector<ChunkPlan> chunks;
  std::int64_t act_elems = 0;  // elements of one exchanged activation [rows, C]
  // Pipeline exchange buffers (backend memory): per chunk and slot the received activation
  // (act dtype), the received gradient and the gradient being sent (grad dtype).
  MemoryPlan pipeline{"pipeline"};
  struct SlotBuffers {
    std::size_t act_in, grad_in, grad_out;
  };
  std::vector<std::vector<SlotBuffers>> exchange;  // [chunk][slot]
  // Host staging (pinned on GPUs): tokens, targets and per-row losses of every micro-batch.
  MemoryPlan host{"host staging"};
  std::size_t host_tokens = 0, host_targets = 0, host_losses = 0;

  std::size_t parameter_bytes() const;   // compute copy and gradients of every chunk
  std::size_t optimizer_bytes() const;   // master weights, moments, shards, staging
  std::size_t activation_bytes() const;  // activations, work space, pipeline buffers
  std::size_t device_bytes() const { return parameter_bytes() + optimizer_bytes() + activation_bytes(); }
  // The layout, the schedule, the communicator groups and every memory table.
  std::string describe(std::size_t rows_per_table = 12) const;
};

EnginePlan plan_engine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                       const config::OptimConfig& optim, int seq_len, int microbatches,
                       const comm::GridShape& shape, const comm::GridCoord& coord,
                       const model::BackendSpec& spec);

// One chunk's state as the checkpointer sees it: host memory in the flat layout of its table.
struct StateView {
  const model::ParameterTable* table = nullptr;
  bool has_embedding = true;
  float* params = nullptr;                 // the flat fp32 parameters (every element on load)
  const ShardingPlan* sharding = nullptr;  // the optimizer pieces this rank holds
  float* exp_avg = nullptr;                // [sharding->state_elems]
  float* exp_avg_sq = nullptr;
  // The engine's own buffers (the CPU): every optimizer step changes them, so a save that
  // runs while training goes on must copy them first. False: host staging that only
  // pull_state() and push_state() write (GPUs).
  bool live = false;
};

class Engine {
 public:
  // fill(microbatch, tokens, targets): this DP rank's micro-batch, [micro_batch_size, seq_len],
  // host memory.
  using FillBatch = std::function<void(int microbatch, std::int32_t* tokens, std::int32_t* targets)>;

  virtual ~Engine() = default;
  virtual const EnginePlan& plan() const = 0;

  virtual void init_parameters(std::uint64_t seed) = 0;
  // Zero gradients, run every micro-batch through the schedule, reduce gradients over the
  // embedding group (tied weights) and DP. grad_scale = 1 / tokens in the global batch.
  virtual StepStats run(const FillBatch& fill, float grad_scale) = 0;
  // Forward only, `microbatches` micro-batches (at most the planned count): the summed loss of
  // this rank's micro-batches (last stage only; zero elsewhere). Gradients untouched.
  virtual StepStats evaluate(const FillBatch& fill, int microbatches) = 0;
  // Sequence-length warm-up: every chunk runs sequences of seq_len <= the planned length;
  // fill() then writes [micro_batch_size, seq_len].
  virtual void set_seq_len(int seq_len) = 0;
  virtual int seq_len() const = 0;
  int planned_seq_len() const { return plan().seq_len; }
  int microbatches() const { return plan().microbatches; }
  // Global gradient norm over every rank (replicated tensors counted once).
  virtual double grad_norm() = 0;
  // Optimizer step on every chunk; returns seconds waited on the parameter all-gather.
  virtual double optimizer_step(double lr, double grad_scale) = 0;

  // Device, layout and memory tables, for the start-up log.
  virtual std::string description() const = 0;
  // The accelerator's name (e.g. "NVIDIA H100 80GB HBM3"); "" on the CPU.
  virtual std::string device_name() const = 0;
  std::size_t parameter_bytes() const { return plan().parameter_bytes(); }
  std::size_t optimizer_bytes() const;  // fp32 Adam moments on this rank
  std::size_t activation_bytes() const { return plan().activation_bytes(); }
  bool has_head() const { return plan().chunks.back().place.has_head; }

  // Checkpoints: host views of every chunk's state. pull_state() fills them from the device
  // (no-op where the state is in host memory), push_state() sends them back after a load.
  // The views are the same memory for the engine's lifetime; StateView::live says whether
  // training writes them.
  virtual std::vector<StateView> state_views() = 0;
  virtual void pull_state() = 0;
  virtual void push_state() = 0;
  virtual long steps_taken() const = 0;
  virtual void set_steps_taken(long steps) = 0;

  // Host copies for tests and the run summary: this rank's fp32 parameters (the master
  // weights; every element, gathered from the ZeRO-1 pieces over DP) and their tensors,
  // every chunk's flat buffer concatenated (offsets into `params`).
  virtual void download_parameters(std::vector<float>& params, std::vector<model::ParamInfo>& info) = 0;
  // The reduced fp32 gradients of the last run(), likewise (before the optimizer step).
  virtual void download_gradients(std::vector<float>& grads) = 0;
};

// The engine for `device` (CPU: fp32; CUDA: bf16 compute with fp32 master weights; a build
// without CUDA throws naming the setting).
std::unique_ptr<Engine> make_engine(config::DeviceKind device, const config::ModelConfig& model,
                                    const config::ParallelConfig& parallel, const config::OptimConfig& optim,
                                    int seq_len, int microbatches, comm::RankGrid& grid);

// The backend spec of a device kind (model::cpu_backend_spec(f32) or model::cuda_backend_spec()).
model::BackendSpec backend_spec(config::DeviceKind device);

}  // namespace strata::parallel
