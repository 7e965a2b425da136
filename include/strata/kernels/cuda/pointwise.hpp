// Per-element formulas of the CUDA kernels, written once as host+device functions so the
// same code runs in the kernels and in host unit tests (tests/cuda/test_kernels_pointwise.cpp,
// which runs without a GPU). Plain C++ when not compiled by nvcc: no CUDA header needed.
// All arithmetic is fp32, as in the kernels.
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define STRATA_HD __host__ __device__ __forceinline__
#else
#define STRATA_HD inline
#endif

namespace strata::kernels::cuda::pointwise {

// GELU, tanh approximation (GPT-2): u = s (x + c x^3), s = sqrt(2/pi), c = 0.044715
//   y = 0.5 x (1 + tanh u)
//   dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 c x^2)
STRATA_HD float gelu(float x) {
  const float s = 0.7978845608028654f, c = 0.044715f;
  return 0.5f * x * (1.0f + tanhf(s * (x + c * x * x * x)));
}
STRATA_HD float gelu_grad(float x) {
  const float s = 0.7978845608028654f, c = 0.044715f;
  const float x2 = x * x;
  const float th = tanhf(s * (x + c * x2 * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * s * (1.0f + 3.0f * c * x2);
}

// SwiGLU: y = silu(g) u, silu(g) = g sigma(g)
//   dg = dy u sigma(g) (1 + g (1 - sigma(g))),  du = dy silu(g)
STRATA_HD float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }
STRATA_HD float swiglu(float g, float u) { return g * sigmoid(g) * u; }
STRATA_HD float swiglu_dgate(float dy, float g, float u) {
  const float sg = sigmoid(g);
  return dy * u * sg * (1.0f + g * (1.0f - sg));
}
STRATA_HD float swiglu_dup(float dy, float g) { return dy * g * sigmoid(g); }

// Online softmax statistics (Milakov & Gimelshein 2018): a running maximum m and
// s = sum e^{x - m}. Adding a value x, or merging two partial (m, s), rescales the sum to
// the larger maximum. The empty state is (-inf, 0); merging with it returns the other side
// (avoids e^{-inf - (-inf)} = NaN).
struct MaxSum {
  float m, s;
};
STRATA_HD MaxSum maxsum_empty() { return {-INFINITY, 0.0f}; }
STRATA_HD MaxSum maxsum_add(MaxSum a, float x) {
  if (x > a.m) return {x, a.s * expf(a.m - x) + 1.0f};  // a.m = -inf gives a.s * 0 + 1
  return {a.m, a.s + expf(x - a.m)};
}
STRATA_HD MaxSum maxsum_merge(MaxSum a, MaxSum b) {
  if (a.s == 0.0f) return b;
  if (b.s == 0.0f) return a;
  const float m = a.m > b.m ? a.m : b.m;
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// AdamW element update (kernels/cpu/adamw.hpp), constants formed on the host:
//   inv_bc1 = 1 / (1 - b1^t), inv_bc2 = 1 / (1 - b2^t), lr_wd = lr * weight_decay.
struct AdamWConsts {
  float lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, grad_scale, inv_bc1, inv_bc2;
};
STRATA_HD void adamw_element(float& p, float& m, float& v, float grad, const AdamWConsts& k, float lr_wd) {
  const float g = grad * k.grad_scale;
  m = k.beta1 * m + k.one_minus_beta1 * g;
  v = k.beta2 * v + k.one_minus_beta2 * g * g;
  p = p - k.lr * (m * k.inv_bc1) / (sqrtf(v * k.inv_bc2) + k.eps) - lr_wd * p;
}

}  // namespace strata::kernels::cuda::pointwise
