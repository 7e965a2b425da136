// LayerNorm and RMSNorm over rows of x[N, C] (math: kernels/cpu/norm.hpp), bf16 in/out,
// statistics and gradients in fp32.
// LayerNorm (Ba et al. 2016):
//   mu = mean_c x,  var = mean_c (x - mu)^2 (two-pass: no cancellation),  rstd = 1/sqrt(var + eps)
//   xh = (x - mu) rstd,  y = bf16(xh w + b)                          y, mean, rstd: =
//   backward, g = dy w:  dx += rstd (g - mean_c g - xh mean_c(g xh))  dx: += (residual stream)
//                        dw += sum_n dy xh,  db += sum_n dy           dw, db: += (micro-batches)
// RMSNorm (Zhang & Sennrich 2019):
//   rstd = 1/sqrt(mean_c x^2 + eps),  xh = x rstd,  y = bf16(xh w)
//   backward: dx += rstd (g - xh mean_c(g xh)),  dw += sum_n dy xh
//
// Launch: one block per row (grid-stride over rows), blockDim = a multiple of 32 such that
// each thread owns at most K columns c = threadIdx.x + k blockDim (k < K): K = 8 for
// C <= 8192, K = 16 for C <= 16384 (C = 768 -> 96 threads, C = 12288 -> 768 threads). A
// thread keeps its columns of x in registers in the forward (each row read once); the
// backward reads a row twice (row sums, then dx; the second read hits L1/L2) to stay within
// the 64 registers a 1024-thread block allows. Row sums are block reductions (warp
// shuffles, then one shared value per warp).
// Backward: the grid is limited to a few blocks per SM; each block walks its rows and keeps
// the dw/db partials of its own columns in registers (no shared-memory races: a column
// belongs to one thread of the block), then adds them to dw/db with one fp32 atomic per
// column per block (order of the block sums varies between runs: fp32 rounding level).
#include "reduce.cuh"
#include "strata/kernels/cuda/norm.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr index_t kMaxC = 16384;

template <int K, bool kLayerNorm>
__global__ void __launch_bounds__(1024)
    norm_forward_kernel(bf16* y, float* mean, float* rstd, const bf16* x, const bf16* w, const bf16* b,
                        index_t N, index_t C, float eps) {
  __shared__ float shared[32];
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    const bf16* xr = x + n * C;
    float xv[K];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const index_t c = threadIdx.x + index_t(k) * blockDim.x;
      xv[k] = c < C ? __bfloat162float(xr[c]) : 0.0f;
      s += kLayerNorm ? xv[k] : xv[k] * xv[k];
    }
    s = detail::block_sum(s, shared);
    float mu = 0.0f, var;
    if (kLayerNorm) {
      mu = s / float(C);
      float d2 = 0.0f;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const index_t c = threadIdx.x + index_t(k) * blockDim.x;
        const float d = xv[k] - mu;
        if (c < C) d2 += d * d;
      }
      var = detail::block_sum(d2, shared) / float(C);
    } else {
      var = s / float(C);  // mean square
    }
    const float rs = 1.0f / sqrtf(var + eps);
    bf16* yr = y + n * C;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const index_t c = threadIdx.x + index_t(k) * blockDim.x;
      if (c < C) {
        float out = (xv[k] - mu) * rs * __bfloat162float(w[c]);
        if (b) out += __bfloat162float(b[c]);
        yr[c] = __float2bfloat16(out);
      }
    }
    if (threadIdx.x == 0) {
      if (kLayerNorm) mean[n] = mu;
      rstd[n] = rs;
    }
  }
}

template <int K, bool kLayerNorm>
__global__ void __launch_bounds__(1024)
    norm_backward_kernel(float* dx, float* dw, float* db, const bf16* dy, const bf16* x, const bf16* w,
                         const float* mean, const float* rstd, index_t N, index_t C) {
  __shared__ float shared[32];
  // Per-thread dw/db partials of this thread's columns, over all rows of this block.
  float acc_w[K], acc_b[K];
#pragma unroll
  for (int k = 0; k < K; ++k) acc_w[k] = acc_b[k] = 0.0f;
  for (index_t n = blockIdx.x; n < N; n += gridDim.x) {
    const bf16* xr = x + n * C;
    const bf16* dyr = dy + n * C;
    const float mu = kLayerNorm ? mean[n] : 0.0f, rs = rstd[n];
    // Pass 1: the row sums of g and g xh, and the parameter-gradient partials.
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const index_t c = threadIdx.x + index_t(k) * blockDim.x;
      if (c < C) {
        const float xh = (__bfloat162float(xr[c]) - mu) * rs;
        const float dyv = __bfloat162float(dyr[c]);
        const float g = dyv * __bfloat162float(w[c]);
        sg += g;
        sgx += g * xh;
        acc_w[k] += dyv * xh;
        acc_b[k] += dyv;
      }
    }
    if (dx) {  // uniform over the block: the barriers inside block_sum are safe
      const float mg = kLayerNorm ? detail::block_sum(sg, shared) / float(C) : 0.0f;
      const float mgx = detail::block_sum(sgx, shared) / float(C);
      // Pass 2: re-read the row (it was just loaded: L1/L2 hits), fewer live registers
      // than keeping x and dy of K columns across the reductions.
      float* dxr = dx + n * C;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const index_t c = threadIdx.x + index_t(k) * blockDim.x;
        if (c < C) {
          const float xh = (__bfloat162float(xr[c]) - mu) * rs;
          const float g = __bfloat162float(dyr[c]) * __bfloat162float(w[c]);
          dxr[c] += rs * (g - mg - xh * mgx);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const index_t c = threadIdx.x + index_t(k) * blockDim.x;
    if (c < C) {
      if (dw) atomicAdd(dw + c, acc_w[k]);
      if (db) atomicAdd(db + c, acc_b[k]);
    }
  }
}

// Threads per block for K columns per thread: ceil(C / K) rounded up to a warp.
int threads_for(index_t C, int K) {
  const index_t t = (C + K - 1) / K;
  return int((t + 31) / 32 * 32);
}

void check_shape(const char* name, index_t C) {
  STRATA_CHECK(C >= 1 && C <= kMaxC, name, ": C = ", C, " is outside the supported range [1, ", kMaxC, "]");
}

template <bool kLayerNorm>
void norm_forward(const char* name, bf16* y, float* mean, float* rstd, const bf16* x, const bf16* w,
                  const bf16* b, index_t N, index_t C, float eps, cudaStream_t stream) {
  check_shape(name, C);
  if (N <= 0) return;
  const unsigned grid = grid_for(N, 1);
  if (C <= 8192) {
    norm_forward_kernel<8, kLayerNorm>
        <<<grid, threads_for(C, 8), 0, stream>>>(y, mean, rstd, x, w, b, N, C, eps);
  } else {
    norm_forward_kernel<16, kLayerNorm>
        <<<grid, threads_for(C, 16), 0, stream>>>(y, mean, rstd, x, w, b, N, C, eps);
  }
  STRATA_CUDA_LAUNCH_CHECK(name);
}

template <bool kLayerNorm>
void norm_backward(const char* name, float* dx, float* dw, float* db, const bf16* dy, const bf16* x,
                   const bf16* w, const float* mean, const float* rstd, index_t N, index_t C,
                   cudaStream_t stream) {
  check_shape(name, C);
  if (N <= 0) return;
  const int K = C <= 8192 ? 8 : 16;
  const int threads = threads_for(C, K);
  // Enough resident blocks to fill the GPU, few enough that the dw/db atomics (C per
  // block) stay cheap: up to 2048 threads per SM.
  const index_t per_sm = index_t(2048 / threads > 0 ? 2048 / threads : 1);
  const unsigned grid = unsigned(detail::min_index(N, per_sm * detail::sm_count()));
  if (K == 8) {
    norm_backward_kernel<8, kLayerNorm><<<grid, threads, 0, stream>>>(dx, dw, db, dy, x, w, mean, rstd, N, C);
  } else {
    norm_backward_kernel<16, kLayerNorm>
        <<<grid, threads, 0, stream>>>(dx, dw, db, dy, x, w, mean, rstd, N, C);
  }
  STRATA_CUDA_LAUNCH_CHECK(name);
}

}  // namespace

void layernorm_forward(bf16* y, float* mean, float* rstd, const bf16* x, const bf16* w, const bf16* b,
                       index_t N, index_t C, float eps, cudaStream_t stream) {
  norm_forward<true>("layernorm_forward", y, mean, rstd, x, w, b, N, C, eps, stream);
}

void layernorm_backward(float* dx, float* dw, float* db, const bf16* dy, const bf16* x, const bf16* w,
                        const float* mean, const float* rstd, index_t N, index_t C, cudaStream_t stream) {
  norm_backward<true>("layernorm_backward", dx, dw, db, dy, x, w, mean, rstd, N, C, stream);
}

void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, index_t N, index_t C, float eps,
                     cudaStream_t stream) {
  norm_forward<false>("rmsnorm_forward", y, nullptr, rstd, x, w, nullptr, N, C, eps, stream);
}

void rmsnorm_backward(float* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, const float* rstd,
                      index_t N, index_t C, cudaStream_t stream) {
  norm_backward<false>("rmsnorm_backward", dx, dw, nullptr, dy, x, w, nullptr, rstd, N, C, stream);
}

}  // namespace strata::kernels::cuda
