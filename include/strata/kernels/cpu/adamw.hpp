// AdamW (Loshchilov & Hutter 2019), decoupled weight decay, bias-corrected moments:
//   g = grad * grad_scale                      (grad_scale carries clipping)
//   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//   mh = m / (1 - b1^t),    vh = v / (1 - b2^t)
//   p -= lr * (mh / (sqrt(vh) + eps) + wd * p)
// `step` is t >= 1. Applied to a contiguous range of n elements with one weight decay.
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
  long step;
};

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, index_t n, const AdamWParams& p);

// adamw_update, then grad = 0 in the same pass: the update's read of the gradient also clears
// it for the next step's accumulation, instead of a separate fill over the whole gradient
// buffer (the optimizer step is memory-bound: 28 bytes per parameter, and the fill adds 4-8).
// Bitwise equal to adamw_update followed by fill(grad, 0).
template <class T>
void adamw_update_zero_grad(T* param, T* grad, T* m, T* v, index_t n, const AdamWParams& p);

}  // namespace strata::kernels::cpu
