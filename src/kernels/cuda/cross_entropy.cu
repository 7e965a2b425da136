// Softmax cross-entropy over bf16 logits[N, ld] (columns V_real..ld-1 are vocabulary
// padding), integer targets[N] (target < 0: no loss, zero gradient), fp32 statistics.
// Math and the tensor-parallel protocol: kernels/cpu/cross_entropy.hpp (Megatron-LM,
// Shoeybi et al. 2019 §3). This rank holds the vocabulary slice starting at vocab_start.
//   1. vocab_parallel_ce_max     row_max[n] = max_{v < V_real} x[n, v]       (-FLT_MAX if V_real = 0)
//                                -> caller: all-reduce(max) = m
//   2. vocab_parallel_ce_sumexp  sumexp[n] = sum_{v < V_real} e^{x[n, v] - m[n]},
//                                target_logit[n] = x[n, target - vocab_start] if this rank owns
//                                the target, else 0  -> caller: all-reduce(sum) = s, x_t
//   3. vocab_parallel_ce_finish  losses[n] = log s + m - x_t  (0 where target < 0);
//                                with_grad: x[n, v] = (e^{x - m} / s - [v == target - vocab_start]) dloss
//                                for v < V_real, 0 for padding and for rows with target < 0   (=)
//   cross_entropy_fused (one rank, vocab_start = 0): the same in one kernel; pass 1 keeps
//   an online (max, sum) per thread (Milakov & Gimelshein 2018) merged over the block, so
//   the row is read once for the statistics and once for the gradient.
// The gradient is formed in fp32 (e^{x - m} / s minus the one-hot) and rounded to bf16 once.
// Launch: one block of 512 threads per row (grid-stride over rows); the row is read with
// 16-byte loads of 8 bf16 where the row start is 16-byte aligned (ld % 8 == 0 and an
// aligned buffer), with a scalar tail; V up to 256k is 64 loads per thread. Reductions are
// warp shuffles then one shared value per warp. A target >= V_real in the fused kernel
// (an invalid token id) gives a NaN loss so the error is visible.
#include <cfloat>

#include "reduce.cuh"
#include "strata/kernels/cuda/cross_entropy.hpp"
#include "strata/kernels/cuda/pointwise.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 512;
namespace pw = pointwise;

__global__ void __launch_bounds__(kThreads)
    ce_max_kernel(float* row_max, const bf16* logits, index_t N, index_t V_real, index_t ld) {
  __shared__ float shared[32];
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    float m = -INFINITY;
    detail::block_row_read(logits + n * ld, V_real, [&](index_t, float x) { m = fmaxf(m, x); });
    m = detail::block_max(m, shared);
    if (threadIdx.x == 0) row_max[n] = V_real > 0 ? m : -FLT_MAX;
  }
}

__global__ void __launch_bounds__(kThreads)
    ce_sumexp_kernel(float* sumexp, float* target_logit, const bf16* logits, const float* row_max,
                     const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                     index_t vocab_start) {
  __shared__ float shared[32];
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    const bf16* x = logits + n * ld;
    const float m = row_max[n];
    float s = 0.0f;
    detail::block_row_read(x, V_real, [&](index_t, float v) { s += expf(v - m); });
    s = detail::block_sum(s, shared);
    if (threadIdx.x == 0) {
      sumexp[n] = s;
      const index_t local = index_t(targets[n]) - vocab_start;
      target_logit[n] = (targets[n] >= 0 && local >= 0 && local < V_real) ? __bfloat162float(x[local]) : 0.0f;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    ce_finish_kernel(bf16* logits, float* losses, const float* row_max, const float* sumexp,
                     const float* target_logit, const std::int32_t* targets, float dloss, bool with_grad,
                     index_t N, index_t V_real, index_t ld, index_t vocab_start) {
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    const std::int32_t tgt = targets[n];
    const float m = row_max[n], s = sumexp[n];
    if (threadIdx.x == 0) losses[n] = tgt < 0 ? 0.0f : logf(s) + m - target_logit[n];
    if (!with_grad) continue;
    bf16* x = logits + n * ld;
    if (tgt < 0) {
      detail::block_row_transform(x, ld, [](index_t, float) { return 0.0f; });
      continue;
    }
    const float sc = dloss / s;
    const index_t local = index_t(tgt) - vocab_start;  // may lie outside [0, V_real): no one-hot here
    detail::block_row_transform(x, ld, [=](index_t v, float xv) {
      if (v >= V_real) return 0.0f;
      return expf(xv - m) * sc - (v == local ? dloss : 0.0f);
    });
  }
}

// Block-wide merge of per-thread online (max, sum) statistics; every thread gets the result.
__device__ pw::MaxSum block_maxsum(pw::MaxSum a, float* sm, float* ss) {
  for (int off = 16; off > 0; off >>= 1) {
    const pw::MaxSum b{__shfl_xor_sync(detail::kFullMask, a.m, off),
                       __shfl_xor_sync(detail::kFullMask, a.s, off)};
    a = pw::maxsum_merge(a, b);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  __syncthreads();  // sm/ss may still be read by the previous row's merge
  if (lane == 0) sm[warp] = a.m, ss[warp] = a.s;
  __syncthreads();
  a = lane < nwarps ? pw::MaxSum{sm[lane], ss[lane]} : pw::maxsum_empty();
  for (int off = 16; off > 0; off >>= 1) {
    const pw::MaxSum b{__shfl_xor_sync(detail::kFullMask, a.m, off),
                       __shfl_xor_sync(detail::kFullMask, a.s, off)};
    a = pw::maxsum_merge(a, b);
  }
  return a;
}

__global__ void __launch_bounds__(kThreads)
    ce_fused_kernel(bf16* logits, float* losses, const std::int32_t* targets, float dloss, bool with_grad,
                    index_t N, index_t V_real, index_t ld) {
  __shared__ float sm[32], ss[32];
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    bf16* x = logits + n * ld;
    const std::int32_t tgt = targets[n];
    if (tgt < 0) {
      if (threadIdx.x == 0) losses[n] = 0.0f;
      if (with_grad) detail::block_row_transform(x, ld, [](index_t, float) { return 0.0f; });
      continue;
    }
    const bool valid = tgt < V_real;
    // Read x[target] before the barriers of the merge: the gradient pass overwrites it.
    const float xt = valid ? __bfloat162float(x[tgt]) : NAN;
    pw::MaxSum a = pw::maxsum_empty();
    detail::block_row_read(x, V_real, [&](index_t, float v) { a = pw::maxsum_add(a, v); });
    a = block_maxsum(a, sm, ss);
    if (threadIdx.x == 0) losses[n] = logf(a.s) + a.m - xt;
    if (!with_grad) continue;
    const float m = a.m, sc = dloss / a.s;
    const index_t local = valid ? index_t(tgt) : -1;
    detail::block_row_transform(x, ld, [=](index_t v, float xv) {
      if (v >= V_real) return 0.0f;
      return expf(xv - m) * sc - (v == local ? dloss : 0.0f);
    });
  }
}

unsigned row_grid(index_t N) { return grid_for(N, 1); }

void check_shape(const char* name, index_t V_real, index_t ld) {
  STRATA_CHECK(V_real >= 0 && ld >= V_real, name, ": need ld >= V_real >= 0, got ld = ", ld,
               ", V_real = ", V_real);
}

}  // namespace

void vocab_parallel_ce_max(float* row_max, const bf16* logits, index_t N, index_t V_real, index_t ld,
                           cudaStream_t stream) {
  check_shape("vocab_parallel_ce_max", V_real, ld);
  if (N <= 0) return;
  ce_max_kernel<<<row_grid(N), kThreads, 0, stream>>>(row_max, logits, N, V_real, ld);
  STRATA_CUDA_LAUNCH_CHECK("vocab_parallel_ce_max");
}

void vocab_parallel_ce_sumexp(float* sumexp, float* target_logit, const bf16* logits, const float* row_max,
                              const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                              index_t vocab_start, cudaStream_t stream) {
  check_shape("vocab_parallel_ce_sumexp", V_real, ld);
  if (N <= 0) return;
  ce_sumexp_kernel<<<row_grid(N), kThreads, 0, stream>>>(sumexp, target_logit, logits, row_max, targets, N,
                                                         V_real, ld, vocab_start);
  STRATA_CUDA_LAUNCH_CHECK("vocab_parallel_ce_sumexp");
}

void vocab_parallel_ce_finish(bf16* logits_to_grad, float* losses, const float* row_max, const float* sumexp,
                              const float* target_logit, const std::int32_t* targets, float dloss,
                              bool with_grad, index_t N, index_t V_real, index_t ld, index_t vocab_start,
                              cudaStream_t stream) {
  check_shape("vocab_parallel_ce_finish", V_real, ld);
  if (N <= 0) return;
  ce_finish_kernel<<<row_grid(N), kThreads, 0, stream>>>(logits_to_grad, losses, row_max, sumexp,
                                                         target_logit, targets, dloss, with_grad, N, V_real,
                                                         ld, vocab_start);
  STRATA_CUDA_LAUNCH_CHECK("vocab_parallel_ce_finish");
}

void cross_entropy_fused(bf16* logits_to_grad, float* losses, const std::int32_t* targets, float dloss,
                         bool with_grad, index_t N, index_t V_real, index_t ld, cudaStream_t stream) {
  check_shape("cross_entropy_fused", V_real, ld);
  STRATA_CHECK(V_real > 0, "cross_entropy_fused: V_real must be positive, got ", V_real);
  if (N <= 0) return;
  ce_fused_kernel<<<row_grid(N), kThreads, 0, stream>>>(logits_to_grad, losses, targets, dloss, with_grad, N,
                                                        V_real, ld);
  STRATA_CUDA_LAUNCH_CHECK("cross_entropy_fused");
}

}  // namespace strata::kernels::cuda
