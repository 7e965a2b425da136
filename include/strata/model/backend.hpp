// What a backend gives the model stage (stage.hpp), the engine (parallel/engine.hpp) and the
// decoder: a compile-time policy class, one per device kind (CpuBackend<T> in
// cpu_backend.hpp; CudaBackend in src/model/cuda/cuda_backend.cuh), so the layer math, the
// tensor-parallel pairs, the pipeline executor and the optimizer are written once (DESIGN.md
// invariant 7) and dispatch costs one call per kernel, nothing per element.
//
// The members every backend has:
//   types    Act (activations, compute weights), Grad (weight gradients, residual-stream
//            gradient), Stat (norm/softmax statistics, losses), Host (host-side results)
//   memory   allocate(plan), upload/download (host <-> backend memory, in stream order),
//            synchronize(), fill/copy/copy_2d/accumulate, cast_grad_to_act, a Mark for timing
//   kernels  linear_forward/backward, bias_grad, norm_forward/backward, rope, attention
//            forward/backward/cached, gelu/swiglu forward/backward, embedding forward/backward,
//            cross-entropy (one rank and vocab-parallel), add_bias, add, sum_squares, adamw
// Semantics: "=" overwrites, "+=" accumulates. Weight and bias gradients always accumulate
// (micro-batches sum); the input-gradient outputs of linear_backward, attention_backward and
// the activation backwards overwrite, unless accumulate_dx is asked for.
#pragma once
#include <cstdint>

#include "strata/model/stage_plan.hpp"

namespace strata::model {

// Attention dimensions in the form every backend takes.
struct AttentionDims {
  std::int64_t B, T, NH, NKV, HS;
  std::int64_t ld_q, ld_kv;  // row strides of q and of k/v
  bool causal;
};

// One block of ring attention (context parallelism; kernels/cpu/ring_attention.hpp): Tq query
// rows at sequence positions q_pos.. against Tk key rows at k_pos.., with batch strides, the
// result merged into a running (out Act, lse Stat). A backend that has it defines
// block_attention_forward(out, lse, work, q, k, v, dims) and block_attention_backward(dq, dk,
// dv, work, dout, out, lse, q, k, v, dims), whose dq/dk/dv are Grad accumulators ("+="): the
// CPU (kernels/cpu/ring_attention) and CUDA (the flash kernel's block form) backends.
struct BlockAttentionDims {
  std::int64_t B, Tq, Tk, NH, NKV, HS;
  std::int64_t ld_q, ld_kv;
  std::int64_t bs_q, bs_kv, bs_o, bs_l;
  std::int64_t q_pos, k_pos;
  bool causal;
};

// One AdamW segment: a contiguous range of the flat parameter buffer with one weight decay,
// and where its optimizer state (master weights, moments) starts (DistributedOptimizer).
struct AdamWSegment {
  std::int64_t param_offset;  // into the flat parameters (and gradients when grads_at_state is false)
  std::int64_t state_offset;  // into the master weights, moments (and the gradient shard)
  std::int64_t numel;
  double weight_decay;
};
struct AdamWStep {
  double lr, beta1, beta2, eps, grad_scale;
  long step;  // t >= 1
};

}  // namespace strata::model
