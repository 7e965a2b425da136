// MLP activations.
// GELU, tanh approximation (Hendrycks & Gimpel 2016; GPT-2's form):
//   y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
//   dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// SwiGLU (Shazeer 2020): y = silu(g) * u with silu(g) = g sigmoid(g)
//   dg += dy * u * sigmoid(g) (1 + g (1 - sigmoid(g))),  du += dy * silu(g)
// The backward kernels accumulate (common.hpp); with accumulate = false they assign instead
// (=, the input gradient's first and only term): one pass fewer than zeroing it first.
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void gelu_forward(T* y, const T* x, index_t n);
template <class T>
void gelu_backward(T* dx, const T* dy, const T* x, index_t n, bool accumulate = true);

template <class T>
void swiglu_forward(T* y, const T* gate, const T* up, index_t n);
template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dy, const T* gate, const T* up, index_t n,
                     bool accumulate = true);

}  // namespace strata::kernels::cpu
