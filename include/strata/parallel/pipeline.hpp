// PipelineEngine<B>: the Engine (engine.hpp) over backend B — this rank's model chunks
// (model::Stage<B>), the executor of a pipeline schedule, and one DistributedOptimizer<B> per
// chunk. The same code runs every layout on every backend; the CPU tests prove each layout
// equal to one rank.
//
// run() executes one step's schedule: a forward receives its input from the previous
// virtual stage (a receive in stream order), runs the chunk, and sends its output on (or
// computes the loss); a backward receives the output gradient, runs the chunk's backward and
// sends the input gradient back. Sends are non-blocking and complete before their buffer is
// reused. Messages between two ranks are matched in the order they are issued (MPI's
// non-overtaking rule; NCCL's rule for send/receive), which the schedules guarantee
// (tests/unit/parallel: every schedule's sends and receives between each pair of stages come
// in the same order). During the last micro-batch's backward each chunk's gradient buckets
// are handed to the DP reduction as soon as backward has passed them.
//
// evaluate() runs forwards only (validation): every virtual stage takes the micro-batches in
// order, (micro-batch, chunk) ascending, so each forward's input was sent by an earlier one and
// no backward, gradient or DP reduction happens. The loss is summed on the last stage.
//
// Timing: the backend's marks (host time on the CPU, events on the GPU stream) around each
// compute and wait, summed after the step's synchronisation.
#pragma once
#include <memory>
#include <vector>

#include "strata/model/cpu_backend.hpp"
#include "strata/parallel/engine.hpp"

namespace strata::parallel {

template <class B>
class PipelineEngine final : public Engine {
 public:
  using A = typename B::Act;
  using G = typename B::Grad;

  // `backend` null: a default one (the CPU's). Collective over the grid (the device
  // communicators are created on first use).
  PipelineEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                 const config::OptimConfig& optim, int seq_len, int microbatches, comm::RankGrid& grid,
                 std::unique_ptr<B> backend = nullptr);
  ~PipelineEngine() override;

  const EnginePlan& plan() const override { return plan_; }
  void init_parameters(std::uint64_t seed) override;
  StepStats run(const FillBatch& fill, float grad_scale) override;
  StepStats evaluate(const FillBatch& fill, int microbatches) override;
  void set_seq_len(int seq_len) override;
  int seq_len() const override { return chunks_.front()->seq_len() * grid_.shape().cp; }  // whole sequences
  double grad_norm() override;
  double optimizer_step(double lr, double grad_scale) override;
  std::string description() const override;
  std::string device_name() const override;
  std::vector<StateView> state_views() override;
  void pull_state() override;
  void push_state() override;
  long steps_taken() const override { return optimizers_.front()->steps_taken(); }
  void set_steps_taken(long steps) override;
  void download_parameters(std::vector<float>& params, std::vector<model::ParamInfo>& info) override;
  void download_gradients(std::vector<float>& grads) override;

  int num_chunks() const { return int(chunks_.size()); }
  model::Stage<B>& chunk(int c) { return *chunks_[std::size_t(c)]; }
  DistributedOptimizer<B>& optimizer(int c) { return *optimizers_[std::size_t(c)]; }
  const std::vector<PipelineAction>& schedule() const { return plan_.schedule; }
  B& backend() { return *be_; }

 private:
  enum class Timing { compute, pipeline_wait, dp_wait };
  int virtual_stage(int chunk) const { return chunk * pp_ + stage_; }
  int tag(int microbatch, int vstage, bool grad) const {
    return (microbatch * pp_ * v_ + vstage) * 2 + (grad ? 1 : 0);
  }
  void fill_once(int microbatch, const FillBatch& fill);
  void forward(int chunk, int microbatch, const FillBatch& fill, float grad_scale, bool with_grad);
  void backward(int chunk, int microbatch);
  void weight(int chunk, int microbatch);  // zb_h1's W pass (no communication)
  void grads_final(int chunk);             // after the step's last backward (or W) of the chunk
  void wait_sends();
  void layer_grads_ready(int chunk, int layer);
  // ZeRO-2 (distributed_optimizer.hpp): bind a chunk's gradients to the optimizer's buffers;
  // the sequence-parallel TP sums (and the CP sums) of its edge tensors.
  void bind_sharded_grads(int chunk);
  void reduce_sequence_parallel_edges(int chunk);
  void gather_sharded_edges();  // ZeRO-3: the edges' parameters for this step
  void time(Timing kind, const typename B::Mark& start);
  StepStats finish_stats(int microbatches);
  void stage_state();  // host staging of the device state (pull/push), made at first use

  comm::RankGrid& grid_;
  std::unique_ptr<B> be_;
  EnginePlan plan_;
  comm::DeviceGroups groups_;
  int pp_, stage_, v_, m_;
  std::int64_t act_elems_;
  std::vector<std::unique_ptr<model::Stage<B>>> chunks_;
  std::vector<std::unique_ptr<DistributedOptimizer<B>>> optimizers_;
  // per chunk, per slot: received activation, received gradient, gradient being sent
  std::vector<std::vector<A*>> act_in_;
  std::vector<std::vector<G*>> grad_in_, grad_out_;
  std::vector<std::vector<comm::Work>> act_send_, grad_send_;
  std::int32_t *host_tokens_ = nullptr, *host_targets_ = nullptr;  // [m, N] pinned
  float* host_losses_ = nullptr;                                   // [m, N] pinned
  std::vector<bool> filled_;                                       // per micro-batch: fill() ran this step
  std::vector<bool> loss_rows_;  // per micro-batch: its losses were computed this step
  const model::ParamInfo* tied_first_ =
      nullptr;  // embed.wte in the first virtual stage's chunk (tied, pp*v > 1)
  const model::ParamInfo* tied_last_ = nullptr;  // its copy for the output layer in the last's
  std::vector<int>
      last_backward_mb_;              // per chunk: the micro-batch whose backward (W) completes the gradients
  std::vector<bool> final_backward_;  // per chunk: that backward is running now
  std::vector<G*> unit_base_;         // ZeRO-2: per chunk, the base of the unit buffer in backward
  std::vector<std::int64_t> final_from_;  // per chunk: gradients from this flat offset on are final
  // Marks of this step: (kind, start, end), summed after the synchronisation.
  struct Timed {
    Timing kind;
    typename B::Mark start, end;
  };
  std::vector<Timed> timed_;
  // Checkpoint staging where the state is not host fp32 (GPUs): per chunk the flat fp32
  // parameters and the moments, in host memory the backend allocates (pinned on GPUs, so
  // pull_state() copies at the link's full speed), made at the first save or load.
  MemoryPlan ckpt_staging_{"checkpoint staging"};
  std::vector<float*> staged_params_, staged_m_, staged_v_;
};

// The CPU engine (fp32), instantiated in src/parallel/engine_cpu.cpp.
using CpuEngine = PipelineEngine<model::CpuBackend<float>>;
extern template class PipelineEngine<model::CpuBackend<float>>;

}  // namespace strata::parallel
