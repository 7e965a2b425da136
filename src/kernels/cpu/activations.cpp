// MLP activations, element-wise over n values (n = N * F).
//
// GELU, tanh approximation (Hendrycks & Gimpel 2016, GPT-2):
//   u = s (x + c x^3),  s = sqrt(2/pi), c = 0.044715
//   y = 0.5 x (1 + tanh u)
//   dx += dy * [0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 c x^2)]
// SwiGLU (Shazeer 2020), gate g and up u of equal shape:
//   y = silu(g) u,  silu(g) = g sigma(g)
//   dg += dy u sigma(g) (1 + g (1 - sigma(g))),   du += dy silu(g)
// Backward accumulates (+=), or assigns (=) with accumulate = false: the input gradient is a
// sum or a fresh buffer, as the caller decides (common.hpp). tanh / sigma use
// detail::exp_fast, which vectorises for float.
#include "strata/kernels/cpu/activations.hpp"

#include <utility>

#include "detail.hpp"

namespace strata::kernels::cpu {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluC = 0.044715;
}  // namespace

template <class T>
void gelu_forward(T* y, const T* x, index_t n) {
  detail::for_blocks("kernels::gelu_fwd", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    const T s = static_cast<T>(kSqrt2OverPi), c = static_cast<T>(kGeluC);
    for (index_t i = i0; i < i1; ++i) {
      const T xi = x[i];
      const T u = s * (xi + c * xi * xi * xi);
      y[i] = T(0.5) * xi * (T(1) + detail::tanh_fast(u));
    }
  });
}

// d GELU(x) / dx (the file comment's formula).
template <class T>
inline T gelu_grad(T x) {
  const T s = static_cast<T>(kSqrt2OverPi), c = static_cast<T>(kGeluC);
  const T x2 = x * x;
  const T th = detail::tanh_fast(s * (x + c * x2 * x));
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * s * (T(1) + T(3) * c * x2);
}

// Two loops rather than one with `accumulate ? dx[i] : 0`: GCC does not vectorise that
// conditional load (measured 6x slower).
template <class T>
void gelu_backward(T* dx, const T* dy, const T* x, index_t n, bool accumulate) {
  detail::for_blocks("kernels::gelu_bwd", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    if (accumulate)
      for (index_t i = i0; i < i1; ++i) dx[i] += dy[i] * gelu_grad(x[i]);
    else
      for (index_t i = i0; i < i1; ++i) dx[i] = dy[i] * gelu_grad(x[i]);
  });
}

template <class T>
void swiglu_forward(T* y, const T* gate, const T* up, index_t n) {
  detail::for_blocks("kernels::swiglu_fwd", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) {
      const T g = gate[i];
      const T sig = T(1) / (T(1) + detail::exp_fast(-g));
      y[i] = g * sig * up[i];
    }
  });
}

template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dy, const T* gate, const T* up, index_t n, bool accumulate) {
  detail::for_blocks("kernels::swiglu_bwd", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    // (d gate, d up) of element i
    auto grads = [=](index_t i) {
      const T g = gate[i];
      const T sig = T(1) / (T(1) + detail::exp_fast(-g));
      const T d = dy[i];
      return std::pair<T, T>{d * up[i] * sig * (T(1) + g * (T(1) - sig)), d * g * sig};
    };
    if (accumulate) {
      for (index_t i = i0; i < i1; ++i) {
        const auto [dg, du] = grads(i);
        dgate[i] += dg;
        dup[i] += du;
      }
    } else {
      for (index_t i = i0; i < i1; ++i) {
        const auto [dg, du] = grads(i);
        dgate[i] = dg;
        dup[i] = du;
      }
    }
  });
}

#define STRATA_INSTANTIATE(T)                                            \
  template void gelu_forward<T>(T*, const T*, index_t);                  \
  template void gelu_backward<T>(T*, const T*, const T*, index_t, bool); \
  template void swiglu_forward<T>(T*, const T*, const T*, index_t);      \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, index_t, bool);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
