// MLP activations (math: kernels/cpu/activations.hpp; the per-element formulas are the
// host+device functions of kernels/cuda/pointwise.hpp), bf16 in and out, fp32 arithmetic.
// GELU, tanh approximation (Hendrycks & Gimpel 2016, GPT-2):
//   y = 0.5 x (1 + tanh u),  u = sqrt(2/pi) (x + 0.044715 x^3)                        =
//   dx = dy [0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)]  =
// SwiGLU (Shazeer 2020): y = silu(g) u, silu(g) = g sigma(g)                           =
//   dg = dy u sigma(g) (1 + g (1 - sigma(g))),  du = dy silu(g)                        =
// The backward kernels OVERWRITE their outputs (unlike the CPU kernels, which accumulate):
// on the GPU the activation gradient is always a fresh bf16 buffer feeding a GEMM.
// Launch: grid-stride loops of 256 threads over n elements; two elements per thread
// step (bf16x2 loads and stores) when every pointer is 4-byte aligned, else one.
#include <initializer_list>

#include "reduce.cuh"
#include "strata/kernels/cuda/activations.hpp"
#include "strata/kernels/cuda/pointwise.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 256;
namespace pw = pointwise;

// Calls f(i) for each element i < n; i is the index of a pair start (paired = true, i
// even, i + 1 < n) or a single element. A helper so each kernel states only its math.
template <class F>
__device__ __forceinline__ void grid_loop_pairs(index_t n, bool paired, F f) {
  const index_t stride = index_t(gridDim.x) * blockDim.x;
  const index_t tid = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (paired) {
    const index_t n2 = n / 2;
    for (index_t p = tid; p < n2; p += stride) f(2 * p, true);
    if (n % 2 == 1 && tid == 0) f(n - 1, false);
  } else {
    for (index_t i = tid; i < n; i += stride) f(i, false);
  }
}

__global__ void gelu_forward_kernel(bf16* y, const bf16* x, index_t n, bool paired) {
  grid_loop_pairs(n, paired, [=](index_t i, bool two) {
    if (two) {
      const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(x + i));
      *reinterpret_cast<__nv_bfloat162*>(y + i) = __floats2bfloat162_rn(pw::gelu(v.x), pw::gelu(v.y));
    } else {
      y[i] = __float2bfloat16(pw::gelu(__bfloat162float(x[i])));
    }
  });
}

__global__ void gelu_backward_kernel(bf16* dx, const bf16* dy, const bf16* x, index_t n, bool paired) {
  grid_loop_pairs(n, paired, [=](index_t i, bool two) {
    if (two) {
      const float2 xv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(x + i));
      const float2 dv = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dy + i));
      *reinterpret_cast<__nv_bfloat162*>(dx + i) =
          __floats2bfloat162_rn(dv.x * pw::gelu_grad(xv.x), dv.y * pw::gelu_grad(xv.y));
    } else {
      dx[i] = __float2bfloat16(__bfloat162float(dy[i]) * pw::gelu_grad(__bfloat162float(x[i])));
    }
  });
}

__global__ void swiglu_forward_kernel(bf16* y, const bf16* gate, const bf16* up, index_t n, bool paired) {
  grid_loop_pairs(n, paired, [=](index_t i, bool two) {
    if (two) {
      const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(gate + i));
      const float2 u = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(up + i));
      *reinterpret_cast<__nv_bfloat162*>(y + i) =
          __floats2bfloat162_rn(pw::swiglu(g.x, u.x), pw::swiglu(g.y, u.y));
    } else {
      y[i] = __float2bfloat16(pw::swiglu(__bfloat162float(gate[i]), __bfloat162float(up[i])));
    }
  });
}

__global__ void swiglu_backward_kernel(bf16* dgate, bf16* dup, const bf16* dy, const bf16* gate,
                                       const bf16* up, index_t n, bool paired) {
  grid_loop_pairs(n, paired, [=](index_t i, bool two) {
    if (two) {
      const float2 d = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dy + i));
      const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(gate + i));
      const float2 u = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(up + i));
      *reinterpret_cast<__nv_bfloat162*>(dgate + i) =
          __floats2bfloat162_rn(pw::swiglu_dgate(d.x, g.x, u.x), pw::swiglu_dgate(d.y, g.y, u.y));
      *reinterpret_cast<__nv_bfloat162*>(dup + i) =
          __floats2bfloat162_rn(pw::swiglu_dup(d.x, g.x), pw::swiglu_dup(d.y, g.y));
    } else {
      const float d = __bfloat162float(dy[i]), g = __bfloat162float(gate[i]), u = __bfloat162float(up[i]);
      dgate[i] = __float2bfloat16(pw::swiglu_dgate(d, g, u));
      dup[i] = __float2bfloat16(pw::swiglu_dup(d, g));
    }
  });
}

bool all_aligned4(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if ((reinterpret_cast<std::uintptr_t>(p) & 3u) != 0) return false;
  return true;
}

unsigned grid_pairs(index_t n) { return grid_for((n + 1) / 2, kThreads); }

}  // namespace

void gelu_forward(bf16* y, const bf16* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_forward_kernel<<<grid_pairs(n), kThreads, 0, stream>>>(y, x, n, all_aligned4({y, x}));
  STRATA_CUDA_LAUNCH_CHECK("gelu_forward");
}

void gelu_backward(bf16* dx, const bf16* dy, const bf16* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_backward_kernel<<<grid_pairs(n), kThreads, 0, stream>>>(dx, dy, x, n, all_aligned4({dx, dy, x}));
  STRATA_CUDA_LAUNCH_CHECK("gelu_backward");
}

void swiglu_forward(bf16* y, const bf16* gate, const bf16* up, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_forward_kernel<<<grid_pairs(n), kThreads, 0, stream>>>(y, gate, up, n, all_aligned4({y, gate, up}));
  STRATA_CUDA_LAUNCH_CHECK("swiglu_forward");
}

void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dy, const bf16* gate, const bf16* up, index_t n,
                     cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_backward_kernel<<<grid_pairs(n), kThreads, 0, stream>>>(dgate, dup, dy, gate, up, n,
                                                                 all_aligned4({dgate, dup, dy, gate, up}));
  STRATA_CUDA_LAUNCH_CHECK("swiglu_backward");
}

}  // namespace strata::kernels::cuda
