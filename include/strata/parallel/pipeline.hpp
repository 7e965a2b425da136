// The pipeline engine: this rank's model chunks and the executor of a pipeline schedule.
//
// Parallelism is applied in a fixed order (torchtitan's habit), here and nowhere else:
//   1. tensor-parallel plan  — each chunk holds its TP shard (model/parameters.cpp)
//   2. pipeline split        — layers to virtual stages: virtual stage vs = chunk * pp + stage,
//                              layers split evenly (or parallel.layers_per_stage); the first
//                              virtual stage has the embedding, the last the output layer
//   3. data-parallel shards  — one DistributedOptimizer per chunk over its flat gradients
//   4. allocate              — every chunk plans and allocates its buffers at construction
//   5. initialise            — from the counter RNG by global name and index
//
// run() executes one step's schedule: a forward receives its input from the previous
// virtual stage (blocking receive; sends are non-blocking and complete before their buffer
// is reused), runs the chunk, and sends its output on (or computes the loss); a backward
// receives the output gradient, runs the chunk's backward and sends the input gradient back.
// During the last micro-batch's backward each chunk's gradient buckets are handed to the
// DP reduction as soon as backward has passed them.
//
// evaluate() runs forwards only (validation): every virtual stage takes the micro-batches in
// order, (micro-batch, chunk) ascending, so each forward's input was sent by an earlier one and
// no backward, gradient or DP reduction happens. The loss is summed on the last stage.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/model/transformer.hpp"
#include "strata/parallel/distributed_optimizer.hpp"
#include "strata/parallel/schedule.hpp"

namespace strata::parallel {

// Layers of each virtual stage (pp * virtual_stages entries).
std::vector<int> layers_per_virtual_stage(const config::ModelConfig& model, const config::ParallelConfig& parallel);

struct StepStats {
  model::LossSum loss;           // summed over this rank's micro-batches (last stage only)
  double compute_s = 0;          // forward/backward kernels
  double pipeline_wait_s = 0;    // waiting for activations/gradients of neighbouring stages
  double dp_wait_s = 0;          // waiting for gradient reductions after backward
};

class PipelineEngine {
 public:
  // fill(microbatch, tokens, targets): this DP rank's micro-batch, [micro_batch_size, seq_len].
  using FillBatch = std::function<void(int microbatch, std::int32_t* tokens, std::int32_t* targets)>;

  PipelineEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                 const config::OptimConfig& optim, int seq_len, int microbatches, comm::RankGrid& grid);

  void init_parameters(std::uint64_t seed);
  // Zero gradients, run every micro-batch through the schedule, reduce gradients over the
  // embedding group (tied weights) and DP. grad_scale = 1 / tokens in the global batch.
  StepStats run(const FillBatch& fill, float grad_scale);
  // Forward only, `microbatches` micro-batches (at most the planned count): the summed
  // loss of this rank's micro-batches (last stage only; zero elsewhere). Gradients untouched.
  StepStats evaluate(const FillBatch& fill, int microbatches);
  // Sequence-length warm-up: every chunk runs sequences of seq_len <= the planned length
  // (Transformer::set_seq_len); fill() then writes [micro_batch_size, seq_len].
  void set_seq_len(int seq_len);
  int seq_len() const { return chunks_.front()->seq_len(); }
  // Global gradient norm over every rank (replicated tensors counted once).
  double grad_norm();
  // Optimizer step on every chunk; returns seconds waited on the parameter all-gather.
  double optimizer_step(double lr, double grad_scale);

  int num_chunks() const { return int(chunks_.size()); }
  int microbatches() const { return m_; }
  model::Transformer<float>& chunk(int c) { return *chunks_[std::size_t(c)]; }
  DistributedOptimizer& optimizer(int c) { return *optimizers_[std::size_t(c)]; }
  const std::vector<PipelineAction>& schedule() const { return schedule_; }
  bool has_head() const;  // this rank computes the loss (last virtual stage)
  std::size_t parameter_bytes() const;
  std::size_t optimizer_bytes() const;
  std::size_t activation_bytes() const;

 private:
  int virtual_stage(int chunk) const { return chunk * pp_ + stage_; }
  int tag(int microbatch, int vstage, bool grad) const { return (microbatch * pp_ * v_ + vstage) * 2 + (grad ? 1 : 0); }
  void forward(int chunk, int microbatch, const FillBatch& fill, float grad_scale, StepStats& stats,
               bool with_grad = true);
  void wait_sends(StepStats& stats);
  void backward(int chunk, int microbatch, StepStats& stats);
  void layer_grads_ready(int chunk, int layer);

  comm::RankGrid& grid_;
  int pp_, stage_, v_, m_;
  std::int64_t act_elems_;
  std::vector<PipelineAction> schedule_;
  std::vector<std::unique_ptr<model::Transformer<float>>> chunks_;
  std::vector<std::unique_ptr<DistributedOptimizer>> optimizers_;
  std::vector<int> slots_;  // activation slots per chunk
  MemoryPlan buffers_{"pipeline"};
  // per chunk, per slot: received activation, received gradient, gradient being sent
  std::vector<std::vector<float*>> act_in_, grad_in_, grad_out_;
  std::vector<std::vector<comm::Work>> act_send_, grad_send_;
  std::int32_t* tokens_ = nullptr;
  std::int32_t* targets_ = nullptr;
  std::vector<int> last_backward_mb_;  // per chunk: the micro-batch whose backward completes the gradients
  std::vector<bool> final_backward_;   // per chunk: that backward is running now
  std::vector<std::int64_t> final_from_;  // per chunk: gradients from this flat offset on are final
};

}  // namespace strata::parallel
