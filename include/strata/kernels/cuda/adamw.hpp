// AdamW on fp32 master weights with a bf16 copy for compute (math: kernels/cpu/adamw.hpp):
//   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   master -= lr (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd master);  param_bf16 = bf16(master)
// over a list of segments, each a contiguous range with one weight decay (the ZeRO-1 pieces
// cut at tensor boundaries), in one launch: blockIdx.y picks the segment.
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

struct AdamWSegment {
  index_t param_offset;  // into param_bf16 (the whole flat parameter buffer) and grad
  index_t state_offset;  // into master, m and v (this rank's optimizer state: its ZeRO-1 pieces)
  index_t numel;
  float weight_decay;
};

struct AdamWStep {
  float lr, beta1, beta2, eps, grad_scale;
  long step;  // t >= 1
};

// segments: a DEVICE array of n_segments entries (uploaded once when the optimizer is built).
// grad is read at state_offset when grad_at_state is true (ZeRO-1: the reduce-scattered
// gradient shard), else at param_offset.
void adamw_update(float* master, bf16* param_bf16, const float* grad, float* m, float* v,
                  const AdamWSegment* segments, int n_segments, index_t max_segment_numel, bool grad_at_state,
                  const AdamWStep& p, cudaStream_t stream);

}  // namespace strata::kernels::cuda
