// LayerNorm and RMSNorm over the last dimension C of x[N, C], one row per Kokkos iteration.
//
// LayerNorm (Ba et al. 2016):
//   mu = mean_c x,  var = mean_c (x - mu)^2,  rstd = 1 / sqrt(var + eps)
//   xh = (x - mu) rstd,  y = xh w + b
//   backward, g = dy w:
//     dx += rstd (g - mean_c(g) - xh mean_c(g xh))
//     dw += sum_n dy xh,   db += sum_n dy
// RMSNorm (Zhang & Sennrich 2019):
//   rstd = 1 / sqrt(mean_c x^2 + eps),  xh = x rstd,  y = xh w
//   backward: dx += rstd (g - xh mean_c(g xh)),  dw += sum_n dy xh
// mean[N] / rstd[N] are saved by the forward. Backward accumulates (+=) into dx (a residual
// stream gradient) and dw/db (micro-batches add up). b and db may be null.
// The row statistics use lane reductions (vectorised partial sums in T; the variance is the
// two-pass form, so no cancellation). dw/db are reduced over rows in a second loop over
// column blocks: threads own disjoint columns, so there is no race under a threaded backend.
#include "strata/kernels/cpu/norm.hpp"

#include "detail.hpp"

namespace strata::kernels::cpu {

namespace {

// One row of each forward (shared by the plain and the residual-fused kernels).
template <class T>
inline void layernorm_row(T* yr, T& mean, T& rstd, const T* xr, const T* w, const T* b, index_t C, T eps) {
  const T mu = detail::lane_sum(xr, C) / T(C);
  const T var = detail::lane_sum<T>(C,
                                    [xr, mu](index_t c) {
                                      const T d = xr[c] - mu;
                                      return d * d;
                                    }) /
                T(C);
  const T rs = T(1) / std::sqrt(var + eps);
  if (b) {
    for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * rs * w[c] + b[c];
  } else {
    for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * rs * w[c];
  }
  mean = mu;
  rstd = rs;
}

template <class T>
inline void rmsnorm_row(T* yr, T& rstd, const T* xr, const T* w, index_t C, T eps) {
  const T ms = detail::lane_dot(xr, xr, C) / T(C);
  const T rs = T(1) / std::sqrt(ms + eps);
  for (index_t c = 0; c < C; ++c) yr[c] = xr[c] * rs * w[c];
  rstd = rs;
}

// r = (r + bias) + x over one row, as add_bias then accumulate do it.
template <class T>
inline void residual_row(T* rr, const T* xr, const T* bias, index_t C) {
  if (bias)
    for (index_t c = 0; c < C; ++c) rr[c] = (rr[c] + bias[c]) + xr[c];
  else
    for (index_t c = 0; c < C; ++c) rr[c] = rr[c] + xr[c];
}

}  // namespace

template <class T>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, index_t N, index_t C,
                       T eps) {
  detail::for_each(
      "kernels::layernorm_fwd", N,
      [=](index_t n)
          STRATA_ISA_CLONES { layernorm_row(y + n * C, mean[n], rstd[n], x + n * C, w, b, C, eps); },
      C);
}

template <class T>
void residual_layernorm_forward(T* r, T* y, T* mean, T* rstd, const T* x, const T* bias, const T* w,
                                const T* b, index_t N, index_t C, T eps) {
  detail::for_each(
      "kernels::residual_layernorm_fwd", N,
      [=](index_t n) STRATA_ISA_CLONES {
        residual_row(r + n * C, x + n * C, bias, C);
        layernorm_row(y + n * C, mean[n], rstd[n], r + n * C, w, b, C, eps);
      },
      C);
}

template <class T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean,
                        const T* rstd, index_t N, index_t C) {
  if (dx) {
    detail::for_each(
        "kernels::layernorm_bwd_dx", N,
        [=](index_t n) STRATA_ISA_CLONES {
          const T* xr = x + n * C;
          const T* dyr = dy + n * C;
          T* dxr = dx + n * C;
          const T mu = mean[n], rs = rstd[n];
          const T mg = detail::lane_sum<T>(C, [dyr, w](index_t c) { return dyr[c] * w[c]; }) / T(C);
          const T mgx =
              detail::lane_sum<T>(C, [=](index_t c) { return dyr[c] * w[c] * (xr[c] - mu) * rs; }) / T(C);
          for (index_t c = 0; c < C; ++c) {
            const T xh = (xr[c] - mu) * rs;
            dxr[c] += rs * (dyr[c] * w[c] - mg - xh * mgx);
          }
        },
        C);
  }
  if (dw || db) {
    constexpr index_t CB = detail::kColBlock;
    const index_t nblk = (C + CB - 1) / CB;
    detail::for_each(
        "kernels::layernorm_bwd_dw", nblk,
        [=](index_t blk) STRATA_ISA_CLONES {
          const index_t c0 = blk * CB, nc = std::min<index_t>(C, c0 + CB) - c0;
          T aw[CB] = {}, ab[CB] = {};
          for (index_t n = 0; n < N; ++n) {
            const T* xr = x + n * C + c0;
            const T* dyr = dy + n * C + c0;
            const T mu = mean[n], rs = rstd[n];
            for (index_t c = 0; c < nc; ++c) {
              aw[c] += dyr[c] * (xr[c] - mu) * rs;
              ab[c] += dyr[c];
            }
          }
          if (dw)
            for (index_t c = 0; c < nc; ++c) dw[c0 + c] += aw[c];
          if (db)
            for (index_t c = 0; c < nc; ++c) db[c0 + c] += ab[c];
        },
        N * CB);
  }
}

template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, index_t N, index_t C, T eps) {
  detail::for_each(
      "kernels::rmsnorm_fwd", N,
      [=](index_t n) STRATA_ISA_CLONES { rmsnorm_row(y + n * C, rstd[n], x + n * C, w, C, eps); }, C);
}

template <class T>
void residual_rmsnorm_forward(T* r, T* y, T* rstd, const T* x, const T* bias, const T* w, index_t N,
                              index_t C, T eps) {
  detail::for_each(
      "kernels::residual_rmsnorm_fwd", N,
      [=](index_t n) STRATA_ISA_CLONES {
        residual_row(r + n * C, x + n * C, bias, C);
        rmsnorm_row(y + n * C, rstd[n], r + n * C, w, C, eps);
      },
      C);
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, index_t N,
                      index_t C) {
  if (dx) {
    detail::for_each(
        "kernels::rmsnorm_bwd_dx", N,
        [=](index_t n) STRATA_ISA_CLONES {
          const T* xr = x + n * C;
          const T* dyr = dy + n * C;
          T* dxr = dx + n * C;
          const T rs = rstd[n];
          const T mgx = detail::lane_sum<T>(C, [=](index_t c) { return dyr[c] * w[c] * xr[c]; }) * rs / T(C);
          for (index_t c = 0; c < C; ++c) dxr[c] += rs * (dyr[c] * w[c] - xr[c] * rs * mgx);
        },
        C);
  }
  if (dw) {
    constexpr index_t CB = detail::kColBlock;
    const index_t nblk = (C + CB - 1) / CB;
    detail::for_each(
        "kernels::rmsnorm_bwd_dw", nblk,
        [=](index_t blk) STRATA_ISA_CLONES {
          const index_t c0 = blk * CB, nc = std::min<index_t>(C, c0 + CB) - c0;
          T aw[CB] = {};
          for (index_t n = 0; n < N; ++n) {
            const T* xr = x + n * C + c0;
            const T* dyr = dy + n * C + c0;
            const T rs = rstd[n];
            for (index_t c = 0; c < nc; ++c) aw[c] += dyr[c] * xr[c] * rs;
          }
          for (index_t c = 0; c < nc; ++c) dw[c0 + c] += aw[c];
        },
        N * CB);
  }
}

#define STRATA_INSTANTIATE(T)                                                                                \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, index_t, index_t, T);         \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, index_t, \
                                      index_t);                                                              \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, index_t, index_t, T);                         \
  template void residual_layernorm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                              index_t, index_t, T);                                          \
  template void residual_rmsnorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, index_t, index_t, T);  \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, index_t, index_t);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
