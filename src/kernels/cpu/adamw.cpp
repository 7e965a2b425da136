// AdamW (Loshchilov & Hutter 2019, Algorithm 2), decoupled weight decay, bias-corrected:
//   g  = grad * grad_scale                   (grad_scale carries gradient clipping)
//   m  = b1 m + (1 - b1) g,       v = b2 v + (1 - b2) g^2
//   mh = m / (1 - b1^t),          vh = v / (1 - b2^t)          (t = step >= 1)
//   p -= lr (mh / (sqrt(vh) + eps) + wd p)
// Over a contiguous range of n elements; m and v are updated in place (assigned, they are
// state, not gradients). The scalar constants are formed in double once and cast to T.
// Memory-bound: 4 streams in, 3 out (4 with adamw_update_zero_grad, which also clears the
// gradient). Threaded over blocks (detail::for_blocks).
#include "strata/kernels/cpu/adamw.hpp"

#include "detail.hpp"
#include "strata/core/error.hpp"

namespace strata::kernels::cpu {

namespace {

// G is const T* (the plain update) or T* (the gradient is cleared after it is read).
template <class T, class G>
void adamw(const char* label, T* param, G grad, T* m, T* v, index_t n, const AdamWParams& p) {
  constexpr bool kZeroGrad = !std::is_const_v<std::remove_pointer_t<G>>;
  STRATA_CHECK(p.step >= 1, "adamw_update: step must be >= 1, got ", p.step);
  const double t = static_cast<double>(p.step);
  const T b1 = static_cast<T>(p.beta1), b2 = static_cast<T>(p.beta2);
  const T one_b1 = static_cast<T>(1.0 - p.beta1), one_b2 = static_cast<T>(1.0 - p.beta2);
  const T inv_bc1 = static_cast<T>(1.0 / (1.0 - std::pow(p.beta1, t)));
  const T inv_bc2 = static_cast<T>(1.0 / (1.0 - std::pow(p.beta2, t)));
  const T lr = static_cast<T>(p.lr), eps = static_cast<T>(p.eps);
  const T lr_wd = static_cast<T>(p.lr * p.weight_decay);
  const T gs = static_cast<T>(p.grad_scale);
  detail::for_blocks(label, n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) {
      const T g = grad[i] * gs;
      if constexpr (kZeroGrad) grad[i] = T(0);
      const T mi = b1 * m[i] + one_b1 * g;
      const T vi = b2 * v[i] + one_b2 * g * g;
      m[i] = mi;
      v[i] = vi;
      const T pi = param[i];
      param[i] = pi - lr * (mi * inv_bc1) / (std::sqrt(vi * inv_bc2) + eps) - lr_wd * pi;
    }
  });
}

}  // namespace

template <class T>
void adamw_update(T* param, const T* grad, T* m, T* v, index_t n, const AdamWParams& p) {
  adamw<T>("kernels::adamw", param, grad, m, v, n, p);
}

template <class T>
void adamw_update_zero_grad(T* param, T* grad, T* m, T* v, index_t n, const AdamWParams& p) {
  adamw<T>("kernels::adamw_zero_grad", param, grad, m, v, n, p);
}

template void adamw_update<float>(float*, const float*, float*, float*, index_t, const AdamWParams&);
template void adamw_update<double>(double*, const double*, double*, double*, index_t, const AdamWParams&);
template void adamw_update_zero_grad<float>(float*, float*, float*, float*, index_t, const AdamWParams&);
template void adamw_update_zero_grad<double>(double*, double*, double*, double*, index_t, const AdamWParams&);

}  // namespace strata::kernels::cpu
