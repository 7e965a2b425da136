// Rotary position embedding (Su et al. 2021, RoFormer §3.4), rotate-half pairing as in
// GPT-NeoX / Hugging Face LLaMA: within a head of HS elements, element i pairs with
// i + HS/2. For position p = t + pos_offset and pair i < HS/2:
//   angle = p * theta^(-2i/HS)
//   forward   (a, b) -> (a cos - b sin,  a sin + b cos)          (rotation R)
//   backward  (a, b) -> (a cos + b sin, -a sin + b cos)          (R^T = R^-1)
// x[B, T, H, HS] is rotated in place. The backward maps the gradient w.r.t. the rotated
// values to the gradient w.r.t. the inputs, also in place: rope sits between a GEMM output
// and attention, so the buffer holds one gradient that is transformed, not accumulated.
// One Kokkos iteration per position t: cos/sin are computed once per (t, pair) in double,
// in chunks of kPairs on the stack (no allocation), and applied to all B x H rows.
#include "strata/kernels/cpu/rope.hpp"

#include "detail.hpp"

namespace strata::kernels::cpu {

namespace {

constexpr index_t kPairs = 64;

template <class T, bool Inverse>
void rope_apply(const char* label, T* x, index_t B, index_t Tlen, index_t H, index_t HS, double theta,
                index_t pos_offset) {
  const index_t half = HS / 2;
  detail::for_each(
      label, Tlen,
      [=](index_t t) STRATA_ISA_CLONES {
        const double pos = static_cast<double>(t + pos_offset);
        T cs[kPairs], sn[kPairs];
        for (index_t i0 = 0; i0 < half; i0 += kPairs) {
          const index_t np = std::min<index_t>(kPairs, half - i0);
          for (index_t i = 0; i < np; ++i) {
            const double ang = pos * std::pow(theta, -2.0 * static_cast<double>(i0 + i) / double(HS));
            cs[i] = static_cast<T>(std::cos(ang));
            sn[i] = static_cast<T>(Inverse ? -std::sin(ang) : std::sin(ang));
          }
          for (index_t b = 0; b < B; ++b) {
            for (index_t h = 0; h < H; ++h) {
              T* lo = x + ((b * Tlen + t) * H + h) * HS + i0;
              T* hi = lo + half;
              for (index_t i = 0; i < np; ++i) {
                const T a = lo[i], c = hi[i];
                lo[i] = a * cs[i] - c * sn[i];
                hi[i] = a * sn[i] + c * cs[i];
              }
            }
          }
        }
      },
      B * H * HS);
}

}  // namespace

template <class T>
void rope_forward(T* x, index_t B, index_t Tlen, index_t H, index_t HS, double theta, index_t pos_offset) {
  rope_apply<T, false>("kernels::rope_fwd", x, B, Tlen, H, HS, theta, pos_offset);
}

template <class T>
void rope_backward(T* dx, index_t B, index_t Tlen, index_t H, index_t HS, double theta, index_t pos_offset) {
  rope_apply<T, true>("kernels::rope_bwd", dx, B, Tlen, H, HS, theta, pos_offset);
}

#define STRATA_INSTANTIATE(T)                                                             \
  template void rope_forward<T>(T*, index_t, index_t, index_t, index_t, double, index_t); \
  template void rope_backward<T>(T*, index_t, index_t, index_t, index_t, double, index_t);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
