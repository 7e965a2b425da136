// Scaled dot-product attention, grouped-query heads (Ainslie et al. 2023, GQA): query
// head h reads key/value head h / (NH / NKV).
//
// Shapes: q[B, T, NH, HS] with row stride ld_q, k/v[B, T, NKV, HS] with row stride ld_kv (so
// q, k, v may be column slices of one fused QKV buffer); out/dout[B, T, NH, HS] contiguous;
// att[B, NH, T, T]; dq / dk / dv have the layouts (and strides) of q / k / v.
// Per (b, h), with Q, K, V the [T, HS] strided views and s = 1/sqrt(HS) (Vaswani et al. 2017):
//   S = s Q K^T,  S[t, u] = -inf for u > t when causal
//   P = softmax_rows(S)                     -> att (zeros above the diagonal when causal)
//   O = P V
// Backward (accumulating into dq, dk, dv, so the GQA heads sharing a K/V head add up):
//   dP = dO V^T
//   dV += P^T dO
//   dS = P * (dP - rowsum(dP * P))          (softmax Jacobian, row by row)
//   dQ += s dS K,   dK += s dS^T Q
// Every product is a call to gemm() on strided views (lda/ldb = ld_q, ld_kv, NH*HS). When
// causal, the products run in blocks of kRows rows and only over the columns a block can
// see (u < i1), which skips ~3/8 of the work at T = 256; the entries of the diagonal block
// above the diagonal are computed and then zeroed by the softmax pass. The row softmax /
// softmax-backward is a Kokkos loop over rows with vectorised exp and reductions.
// scratch (T*T elements, from the caller) holds dP, then dS, of one (b, h) at a time.
#include "strata/kernels/cpu/attention.hpp"

#include "detail.hpp"
#include "strata/core/error.hpp"
#include "strata/kernels/cpu/matmul.hpp"

namespace strata::kernels::cpu {

namespace {

constexpr index_t kRows = 64;

void check_shape(const AttentionShape& s) {
  STRATA_CHECK(s.NKV > 0 && s.NH % s.NKV == 0, "attention: NH = ", s.NH,
               " is not a multiple of NKV = ", s.NKV);
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS, "attention: ld_q = ", s.ld_q,
               ", ld_kv = ", s.ld_kv, " are smaller than the heads they hold");
}

}  // namespace

template <class T>
void attention_forward(T* out, T* att, const T* q, const T* k, const T* v, const AttentionShape& s) {
  check_shape(s);
  const index_t Tn = s.T, HS = s.HS, NH = s.NH, group = s.NH / s.NKV, ld_o = NH * HS;
  const bool causal = s.causal;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  for (index_t b = 0; b < s.B; ++b) {
    for (index_t h = 0; h < NH; ++h) {
      const T* qb = q + b * Tn * s.ld_q + h * HS;
      const T* kb = k + b * Tn * s.ld_kv + (h / group) * HS;
      const T* vb = v + b * Tn * s.ld_kv + (h / group) * HS;
      T* P = att + (b * NH + h) * Tn * Tn;
      T* ob = out + b * Tn * ld_o + h * HS;
      for (index_t i0 = 0; i0 < Tn; i0 += kRows) {
        const index_t i1 = std::min(Tn, i0 + kRows);
        gemm<T>(false, true, i1 - i0, causal ? i1 : Tn, HS, scale, qb + i0 * s.ld_q, s.ld_q, kb,
                s.ld_kv, T(0), P + i0 * Tn, Tn);
      }
      detail::for_each("kernels::attention_softmax_fwd", Tn, [=](index_t t) {
        T* p = P + t * Tn;
        const index_t len = causal ? t + 1 : Tn;
        const T mx = detail::lane_max(p, len);
        for (index_t u = 0; u < len; ++u) p[u] = detail::exp_fast(p[u] - mx);
        const T inv = T(1) / detail::lane_sum(p, len);
        for (index_t u = 0; u < len; ++u) p[u] *= inv;
        for (index_t u = len; u < Tn; ++u) p[u] = T(0);
      });
      for (index_t i0 = 0; i0 < Tn; i0 += kRows) {
        const index_t i1 = std::min(Tn, i0 + kRows);
        gemm<T>(false, false, i1 - i0, HS, causal ? i1 : Tn, T(1), P + i0 * Tn, Tn, vb, s.ld_kv,
                T(0), ob + i0 * ld_o, ld_o);
      }
    }
  }
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* scratch, const T* dout, const T* att, const T* q,
                        const T* k, const T* v, const AttentionShape& s) {
  check_shape(s);
  const index_t Tn = s.T, HS = s.HS, NH = s.NH, group = s.NH / s.NKV, ld_o = NH * HS;
  const bool causal = s.causal;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  T* dS = scratch;
  for (index_t b = 0; b < s.B; ++b) {
    for (index_t h = 0; h < NH; ++h) {
      const index_t qoff = b * Tn * s.ld_q + h * HS;
      const index_t kvoff = b * Tn * s.ld_kv + (h / group) * HS;
      const T* P = att + (b * NH + h) * Tn * Tn;
      const T* dob = dout + b * Tn * ld_o + h * HS;
      // dP = dO V^T (rows i0..i1 see columns < i1 when causal)
      for (index_t i0 = 0; i0 < Tn; i0 += kRows) {
        const index_t i1 = std::min(Tn, i0 + kRows);
        gemm<T>(false, true, i1 - i0, causal ? i1 : Tn, HS, T(1), dob + i0 * ld_o, ld_o,
                v + kvoff, s.ld_kv, T(0), dS + i0 * Tn, Tn);
      }
      // dV += P^T dO (key rows j0..j1 are seen by query rows >= j0 when causal)
      for (index_t j0 = 0; j0 < Tn; j0 += kRows) {
        const index_t j1 = std::min(Tn, j0 + kRows), t0 = causal ? j0 : 0;
        gemm<T>(true, false, j1 - j0, HS, Tn - t0, T(1), P + t0 * Tn + j0, Tn, dob + t0 * ld_o,
                ld_o, T(1), dv + kvoff + j0 * s.ld_kv, s.ld_kv);
      }
      // dS = P * (dP - rowsum(dP * P)), zero where P is masked
      detail::for_each("kernels::attention_softmax_bwd", Tn, [=](index_t t) {
        T* d = dS + t * Tn;
        const T* p = P + t * Tn;
        const index_t len = causal ? t + 1 : Tn;
        const T dot = detail::lane_dot(d, p, len);
        for (index_t u = 0; u < len; ++u) d[u] = p[u] * (d[u] - dot);
        for (index_t u = len; u < Tn; ++u) d[u] = T(0);
      });
      // dQ += s dS K
      for (index_t i0 = 0; i0 < Tn; i0 += kRows) {
        const index_t i1 = std::min(Tn, i0 + kRows);
        gemm<T>(false, false, i1 - i0, HS, causal ? i1 : Tn, scale, dS + i0 * Tn, Tn, k + kvoff,
                s.ld_kv, T(1), dq + qoff + i0 * s.ld_q, s.ld_q);
      }
      // dK += s dS^T Q
      for (index_t j0 = 0; j0 < Tn; j0 += kRows) {
        const index_t j1 = std::min(Tn, j0 + kRows), t0 = causal ? j0 : 0;
        gemm<T>(true, false, j1 - j0, HS, Tn - t0, scale, dS + t0 * Tn + j0, Tn,
                q + qoff + t0 * s.ld_q, s.ld_q, T(1), dk + kvoff + j0 * s.ld_kv, s.ld_kv);
      }
    }
  }
}

template <class T>
void attention_forward_cached(T* out, T* scratch, const T* q, const T* k, const T* v,
                              const CachedAttentionShape& s) {
  STRATA_CHECK(s.NKV > 0 && s.NH % s.NKV == 0, "attention: NH = ", s.NH, " is not a multiple of NKV = ", s.NKV);
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS, "attention: ld_q = ", s.ld_q,
               ", ld_kv = ", s.ld_kv, " are smaller than the heads they hold");
  const index_t Tq = s.Tq, Tk = s.pos + s.Tq, HS = s.HS, NH = s.NH, group = s.NH / s.NKV, ld_o = NH * HS;
  const index_t pos = s.pos;
  const bool causal = s.causal;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  T* P = scratch;  // [Tq, Tk], one head at a time
  for (index_t h = 0; h < NH; ++h) {
    const T* kb = k + (h / group) * HS;
    const T* vb = v + (h / group) * HS;
    gemm<T>(false, true, Tq, Tk, HS, scale, q + h * HS, s.ld_q, kb, s.ld_kv, T(0), P, Tk);
    detail::for_each("kernels::attention_softmax_cached", Tq, [=](index_t i) {
      T* p = P + i * Tk;
      const index_t len = causal ? pos + i + 1 : Tk;
      const T mx = detail::lane_max(p, len);
      for (index_t u = 0; u < len; ++u) p[u] = detail::exp_fast(p[u] - mx);
      const T inv = T(1) / detail::lane_sum(p, len);
      for (index_t u = 0; u < len; ++u) p[u] *= inv;
      for (index_t u = len; u < Tk; ++u) p[u] = T(0);
    });
    gemm<T>(false, false, Tq, HS, Tk, T(1), P, Tk, vb, s.ld_kv, T(0), out + h * HS, ld_o);
  }
}

#define STRATA_INSTANTIATE(T)                                                                \
  template void attention_forward_cached<T>(T*, T*, const T*, const T*, const T*,            \
                                            const CachedAttentionShape&);                    \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*,                   \
                                     const AttentionShape&);                                 \
  template void attention_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                      const T*, const AttentionShape&);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
