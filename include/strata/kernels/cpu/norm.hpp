// LayerNorm and RMSNorm over the last dimension C of x[N, C].
//
// LayerNorm (Ba et al. 2016): mu = mean(x), rstd = 1/sqrt(var(x) + eps), xh = (x - mu) rstd,
//   y = xh * w + b.  Backward with g = dy * w:
//   dx += rstd * (g - mean(g) - xh * mean(g * xh)),  dw += sum_n dy * xh,  db += sum_n dy.
// RMSNorm (Zhang & Sennrich 2019): rstd = 1/sqrt(mean(x^2) + eps), y = x rstd w.
//   dx += rstd * (g - xh * mean(g * xh)) with xh = x rstd,  dw += sum_n dy * xh.
// mean[N] and rstd[N] are saved by the forward for the backward. b / db may be null (no bias).
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, index_t N, index_t C,
                       T eps);
template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean,
                        const T* rstd, index_t N, index_t C);

template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, index_t N, index_t C, T eps);
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, index_t N, index_t C);

// The residual add fused with the norm that follows it (one pass over the rows instead of
// three: bias add, residual add, norm), as in a pre-norm block's `mid = x + attn(...) + bo;
// ln2 = norm(mid)`:
//   r[n, :] = (r[n, :] + bias) + x[n, :]   r holds the branch output on entry and the residual
//                                          stream on exit; bias may be null
//   y, mean, rstd = layernorm_forward / rmsnorm_forward of the new r
// Bitwise equal to add_bias, accumulate, then the norm (the same operations in the same order).
template <class T>
void residual_layernorm_forward(T* r, T* y, T* mean, T* rstd, const T* x, const T* bias, const T* w,
                                const T* b, index_t N, index_t C, T eps);
template <class T>
void residual_rmsnorm_forward(T* r, T* y, T* rstd, const T* x, const T* bias, const T* w, index_t N,
                              index_t C, T eps);

}  // namespace strata::kernels::cpu
