// Private device helpers of the CUDA kernel files (elementwise, embedding, norm, rope,
// activations, cross_entropy, adamw): warp and block reductions, 16-byte bf16 packets, and
// the SM count for sizing persistent grids. Not installed, not part of the interface.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda::detail {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, off));
  return v;
}

// Sum (or max) of v over the block; every thread gets the result. blockDim.x must be a
// multiple of 32 (every launch here uses one). `shared` holds 32 floats; the leading
// barrier lets consecutive calls reuse it (no warp still reads the previous result).
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_sum(lane < nwarps ? shared[lane] : 0.0f);
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_max(lane < nwarps ? shared[lane] : -INFINITY);
}

// Eight bf16 in one 16-byte load or store.
struct alignas(16) Bf16x8 {
  bf16 v[8];
};

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// f(v, x[v] as float) for v in [0, n), the block's threads striding over the row; 16-byte
// loads where the row start is 16-byte aligned, scalar loads for the tail or otherwise.
template <class F>
__device__ __forceinline__ void block_row_read(const bf16* x, index_t n, F f) {
  index_t v0 = 0;
  if (aligned16(x)) {
    const index_t n8 = n / 8;
    const Bf16x8* x8 = reinterpret_cast<const Bf16x8*>(x);
    for (index_t j = threadIdx.x; j < n8; j += blockDim.x) {
      const Bf16x8 p = x8[j];
#pragma unroll
      for (int k = 0; k < 8; ++k) f(j * 8 + k, __bfloat162float(p.v[k]));
    }
    v0 = n8 * 8;
  }
  for (index_t v = v0 + threadIdx.x; v < n; v += blockDim.x) f(v, __bfloat162float(x[v]));
}

// x[v] = bf16(f(v, x[v] as float)) for v in [0, n), same access pattern as block_row_read.
template <class F>
__device__ __forceinline__ void block_row_transform(bf16* x, index_t n, F f) {
  index_t v0 = 0;
  if (aligned16(x)) {
    const index_t n8 = n / 8;
    Bf16x8* x8 = reinterpret_cast<Bf16x8*>(x);
    for (index_t j = threadIdx.x; j < n8; j += blockDim.x) {
      Bf16x8 p = x8[j];
#pragma unroll
      for (int k = 0; k < 8; ++k) p.v[k] = __float2bfloat16(f(j * 8 + k, __bfloat162float(p.v[k])));
      x8[j] = p;
    }
    v0 = n8 * 8;
  }
  for (index_t v = v0 + threadIdx.x; v < n; v += blockDim.x)
    x[v] = __float2bfloat16(f(v, __bfloat162float(x[v])));
}

// Multiprocessors of the current device (sizes grids that loop, e.g. to bound atomics).
inline int sm_count() {
  int device = 0, sms = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&device));
  STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms > 0 ? sms : 1;
}

__host__ __device__ inline index_t min_index(index_t a, index_t b) { return a < b ? a : b; }

}  // namespace strata::kernels::cuda::detail
