// GpuEngine: the training step on NVIDIA GPUs (hardware.device: cuda), the GPU counterpart
// of PipelineEngine for pp = 1: one model chunk (all layers) per rank, tensor parallelism
// over NCCL (Megatron-LM's column/row-parallel layers and vocab-parallel embedding and loss,
// as in model/transformer.hpp, with or without sequence parallelism), data parallelism with bucketed
// gradient reduction overlapped with backward and ZeRO-1 (DistributedOptimizer's buckets and
// pieces), bf16 compute with fp32 master weights, gradients and optimizer state.
//
// Precision (DESIGN.md "bf16 compute with fp32 master weights and optimizer state on GPU"):
//   parameters used by the kernels   bf16 copy of the fp32 master weights (refreshed by AdamW)
//   activations                      bf16; norm statistics and softmax statistics fp32
//   residual-stream gradient         fp32 (summed over layers without bf16 rounding)
//   weight gradients                 fp32, accumulated over micro-batches by the GEMMs
//   DP reduction                     fp32, or bf16 (parallel.grad_reduce_dtype: bf16)
//   master weights, Adam moments     fp32 (1/dp of them per rank under ZeRO-1)
//
// The header needs no CUDA headers (the trainer is plain C++); the implementation is in
// src/parallel/cuda/, and builds without CUDA get a constructor that throws.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/model/parameters.hpp"
#include "strata/parallel/pipeline.hpp"

namespace strata::parallel {

class GpuEngine {
 public:
  using FillBatch = PipelineEngine::FillBatch;

  // Selects this rank's device (kernels::cuda::select_device with the grid's local rank),
  // creates the compute stream and the TP/DP NCCL communicators, plans and allocates every
  // buffer on the device. Throws, naming the setting, for what the GPU path does not run:
  // pp > 1 (and virtual stages), head sizes other than 64 and 128; with sequence parallelism
  // micro_batch_size x seq_len must be divisible by tp.
  GpuEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
            const config::OptimConfig& optim, int seq_len, int microbatches, comm::RankGrid& grid);
  ~GpuEngine();
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  // The layout-independent initialisation of Transformer::init_parameters (same values for
  // every layout), into the fp32 master weights and their bf16 copy.
  void init_parameters(std::uint64_t seed);
  // Zero gradients, forward and backward of every micro-batch (fill() writes host buffers of
  // [micro_batch_size, seq_len] tokens and targets), DP reduction launched per bucket as
  // backward passes it. grad_scale = 1 / target tokens in the global batch. Returns when the
  // step's losses are on the host; compute_s is the GPU time of forward/backward (events),
  // dp_wait_s the time the compute stream waited for the last reductions.
  StepStats run(const FillBatch& fill, float grad_scale);
  // Forward only over `microbatches` micro-batches; the summed loss.
  StepStats evaluate(const FillBatch& fill, int microbatches);
  // Global gradient L2 norm over every rank (TP-replicated tensors counted once).
  double grad_norm();
  // AdamW on this rank's pieces, then the bf16 parameters all-gathered over DP (ZeRO-1).
  // Returns seconds waited for the all-gather.
  double optimizer_step(double lr, double grad_scale);
  void synchronize();  // host waits for everything enqueued

  int microbatches() const;
  const model::ParameterTable& table() const;  // this rank's shard of the model (flat layout)
  // Device, memory plan tables (parameters, optimizer, activations) and the peak.
  std::string description() const;
  std::string device_name() const;  // cudaDeviceProp::name, e.g. "NVIDIA H100 80GB HBM3"
  std::size_t parameter_bytes() const;
  std::size_t optimizer_bytes() const;
  std::size_t activation_bytes() const;

  // Host copies in the flat layout of table() (tests, checkpoints): the fp32 master weights
  // (every element, gathered from the ZeRO-1 pieces), the fp32 gradients of the last run()
  // (before the optimizer step: the DP-reduced sum), and setting the weights from the host.
  void download_parameters(float* host);
  void download_gradients(float* host);
  void upload_parameters(const float* host);

  // Checkpoints (ckpt::EngineCheckpointer), DistributedOptimizer's view of the state: the
  // optimizer pieces this rank holds (ZeRO-1: piece dp_rank of every bucket, in bucket order;
  // otherwise the whole padded buffer) and where each starts in its moment arrays.
  const std::vector<Range>& owned_pieces() const;
  const std::vector<std::int64_t>& piece_offsets() const;
  std::int64_t padded_numel() const;  // the flat buffers: table().numel() padded to a multiple of dp
  std::int64_t state_numel() const;   // elements of this rank's master weights and each moment
  bool sharded() const;               // ZeRO-1 over more than one DP rank
  long steps_taken() const;
  void set_steps_taken(long steps);
  // params: [padded_numel()] host buffer; the fp32 master weights of the owned pieces are
  // written at their flat positions (every element without ZeRO-1). m, v: [state_numel()].
  // Local to this rank (no communication).
  void download_state(float* params, float* exp_avg, float* exp_avg_sq);
  // params: every element of the flat layout (the bf16 copy is cast from it, the owned pieces
  // become the master weights); m, v: [state_numel()].
  void upload_state(const float* params, const float* exp_avg, const float* exp_avg_sq);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::parallel
