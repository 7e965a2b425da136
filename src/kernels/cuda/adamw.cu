// AdamW (Loshchilov & Hutter 2019, Algorithm 2; math: kernels/cpu/adamw.hpp) on fp32
// master weights, with the bf16 compute copy refreshed in the same pass:
//   g = grad * grad_scale                         (grad_scale carries gradient clipping)
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2                     (state: =)
//   master -= lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd master)
//   param_bf16 = bf16(master)                       (round to nearest even)
// The element formula is pointwise::adamw_element (host-tested); the bias corrections
// 1/(1 - b^t) are formed on the host in double, as the CPU kernel does.
// Segments: each a contiguous range with its own weight decay. master, m and v are this
// rank's optimizer state, indexed at state_offset + i; param_bf16 is the whole flat
// parameter buffer, indexed at param_offset + i; grad is read at state_offset + i when
// grad_at_state (ZeRO-1: the reduce-scattered shard) else at param_offset + i.
// Launch: one kernel for all segments; blockIdx.y picks the segment (grid-stride over
// segments beyond 65535), blockIdx.x/threadIdx.x stride over the segment's elements. The
// x-size is capped at 4 blocks per SM, so a small segment costs few idle blocks and a
// large one loops. Memory-bound: 5 fp32 streams in/out, one bf16 out, grad in.
#include <cmath>

#include "reduce.cuh"
#include "strata/kernels/cuda/adamw.hpp"
#include "strata/kernels/cuda/pointwise.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void adamw_kernel(float* master, bf16* param_bf16, const float* grad, float* m, float* v,
                             const AdamWSegment* segments, int n_segments, bool grad_at_state,
                             pointwise::AdamWConsts k) {
  for (int s = blockIdx.y; s < n_segments; s += gridDim.y) {
    const AdamWSegment seg = segments[s];
    const float lr_wd = k.lr * seg.weight_decay;
    const index_t stride = index_t(gridDim.x) * blockDim.x;
    for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < seg.numel; i += stride) {
      const index_t si = seg.state_offset + i, pi = seg.param_offset + i;
      float p = master[si], mi = m[si], vi = v[si];
      pointwise::adamw_element(p, mi, vi, grad[grad_at_state ? si : pi], k, lr_wd);
      master[si] = p;
      m[si] = mi;
      v[si] = vi;
      param_bf16[pi] = __float2bfloat16(p);
    }
  }
}

}  // namespace

void adamw_update(float* master, bf16* param_bf16, const float* grad, float* m, float* v,
                  const AdamWSegment* segments, int n_segments, index_t max_segment_numel, bool grad_at_state,
                  const AdamWStep& p, cudaStream_t stream) {
  STRATA_CHECK(p.step >= 1, "adamw_update: step must be >= 1, got ", p.step);
  STRATA_CHECK(n_segments >= 0 && max_segment_numel >= 0, "adamw_update: n_segments = ", n_segments,
               " and max_segment_numel = ", max_segment_numel, " must be >= 0");
  if (n_segments == 0 || max_segment_numel == 0) return;
  const double t = static_cast<double>(p.step);
  pointwise::AdamWConsts k{};
  k.lr = p.lr;
  k.beta1 = p.beta1;
  k.beta2 = p.beta2;
  k.one_minus_beta1 = static_cast<float>(1.0 - double(p.beta1));
  k.one_minus_beta2 = static_cast<float>(1.0 - double(p.beta2));
  k.eps = p.eps;
  k.grad_scale = p.grad_scale;
  k.inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(double(p.beta1), t)));
  k.inv_bc2 = static_cast<float>(1.0 / (1.0 - std::pow(double(p.beta2), t)));
  const dim3 grid(grid_for(max_segment_numel, kThreads, index_t(detail::sm_count()) * 4),
                  unsigned(n_segments < 65535 ? n_segments : 65535));
  adamw_kernel<<<grid, kThreads, 0, stream>>>(master, param_bf16, grad, m, v, segments, n_segments,
                                              grad_at_state, k);
  STRATA_CUDA_LAUNCH_CHECK("adamw_update");
}

}  // namespace strata::kernels::cuda
