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
// causal, the products run in blocks of R rows and only over the columns a block can see
// (u < i1), which skips ~3/8 of the work at T = 256 with R = 64; the entries of the diagonal
// block above the diagonal are computed and then zeroed by the softmax pass.
//
// Threads: the work items are the (b, KV head) pairs; each runs the query heads of its group
// in turn, so the heads that add into the same dK / dV rows are never on two threads at once.
// With at least two items and two kernel threads, W = min(threads, items) workers each take
// a contiguous run of items and call single-threaded GEMMs (detail::BlasThreadsScope); with
// fewer items (B = 1 and one KV head) the items run in turn with the BLAS threaded and the
// row loops parallel. Every output element is produced by one item, in the same order.
// Backward scratch (T*T elements, from the caller): worker w owns T*T / W of it and holds one
// row block [i0, i1) x [0, i1) of dP, then dS, at a time, so R = min(64, T / W); for
// T >= 64 W the blocks, and so the results, do not depend on W.
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

// Workers for `items` independent work items (1: run them in turn with threaded BLAS).
index_t workers_for(index_t items) {
  const index_t threads = detail::kernel_threads();
  return threads >= 2 && items >= 2 ? std::min(threads, items) : 1;
}

// Runs item(i, w) for i in [0, items): worker w of W takes a contiguous run of items.
template <class F>
void run_items(const char* label, index_t items, index_t W, F item) {
  if (W <= 1) {
    for (index_t i = 0; i < items; ++i) item(i, index_t(0));
    return;
  }
  detail::BlasThreadsScope one_blas_thread(1);
  detail::for_each(
      label, W,
      [=](index_t w) {
        const index_t i0 = items * w / W, i1 = items * (w + 1) / W;
        for (index_t i = i0; i < i1; ++i) item(i, w);
      },
      detail::kMinParallelWork);
}

// f(t) for rows t in [0, n): parallel when the caller is not already a worker.
template <class F>
void rows(const char* label, index_t n, bool parallel, index_t work, F f) {
  if (parallel)
    detail::for_each(label, n, f, work);
  else
    for (index_t t = 0; t < n; ++t) f(t);
}

// One query head's forward: P = softmax(s Q K^T) into P[T, T], O = P V.
template <class T>
void head_forward(T* ob, T* P, const T* qb, const T* kb, const T* vb, const AttentionShape& s, T scale,
                  bool parallel_rows) {
  const index_t Tn = s.T, HS = s.HS, ld_o = s.NH * s.HS;
  const bool causal = s.causal;
  for (index_t i0 = 0; i0 < Tn; i0 += kRows) {
    const index_t i1 = std::min(Tn, i0 + kRows);
    gemm<T>(false, true, i1 - i0, causal ? i1 : Tn, HS, scale, qb + i0 * s.ld_q, s.ld_q, kb, s.ld_kv, T(0),
            P + i0 * Tn, Tn);
  }
  rows("kernels::attention_softmax_fwd", Tn, parallel_rows, Tn, [=](index_t t) STRATA_ISA_CLONES {
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
    gemm<T>(false, false, i1 - i0, HS, causal ? i1 : Tn, T(1), P + i0 * Tn, Tn, vb, s.ld_kv, T(0),
            ob + i0 * ld_o, ld_o);
  }
}

// One query head's backward, accumulating into dq (its own rows) and dk, dv (shared by the
// heads of its group); work holds R x T elements.
template <class T>
void head_backward(T* dqb, T* dkb, T* dvb, T* work, index_t R, const T* dob, const T* P, const T* qb,
                   const T* kb, const T* vb, const AttentionShape& s, T scale, bool parallel_rows) {
  const index_t Tn = s.T, HS = s.HS, ld_o = s.NH * s.HS;
  const bool causal = s.causal;
  // dV += P^T dO (key rows j0..j1 are seen by query rows >= j0 when causal)
  for (index_t j0 = 0; j0 < Tn; j0 += kRows) {
    const index_t j1 = std::min(Tn, j0 + kRows), t0 = causal ? j0 : 0;
    gemm<T>(true, false, j1 - j0, HS, Tn - t0, T(1), P + t0 * Tn + j0, Tn, dob + t0 * ld_o, ld_o, T(1),
            dvb + j0 * s.ld_kv, s.ld_kv);
  }
  for (index_t i0 = 0; i0 < Tn; i0 += R) {
    const index_t i1 = std::min(Tn, i0 + R), c = causal ? i1 : Tn;
    // dP = dO V^T for rows i0..i1, columns < c (row stride c in `work`)
    gemm<T>(false, true, i1 - i0, c, HS, T(1), dob + i0 * ld_o, ld_o, vb, s.ld_kv, T(0), work, c);
    // dS = P * (dP - rowsum(dP * P)), zero where P is masked
    rows("kernels::attention_softmax_bwd", i1 - i0, parallel_rows, c, [=](index_t r) STRATA_ISA_CLONES {
      const index_t t = i0 + r;
      T* d = work + r * c;
      const T* p = P + t * Tn;
      const index_t len = causal ? t + 1 : Tn;
      const T dot = detail::lane_dot(d, p, len);
      for (index_t u = 0; u < len; ++u) d[u] = p[u] * (d[u] - dot);
      for (index_t u = len; u < c; ++u) d[u] = T(0);
    });
    // dQ[i0:i1] += s dS K[0:c],  dK[0:c] += s dS^T Q[i0:i1]
    gemm<T>(false, false, i1 - i0, HS, c, scale, work, c, kb, s.ld_kv, T(1), dqb + i0 * s.ld_q, s.ld_q);
    gemm<T>(true, false, c, HS, i1 - i0, scale, work, c, qb + i0 * s.ld_q, s.ld_q, T(1), dkb, s.ld_kv);
  }
}

}  // namespace

template <class T>
void attention_forward(T* out, T* att, const T* q, const T* k, const T* v, const AttentionShape& s) {
  check_shape(s);
  const index_t Tn = s.T, HS = s.HS, NH = s.NH, NKV = s.NKV, group = NH / NKV, ld_o = NH * HS;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  const index_t items = s.B * NKV, W = workers_for(items);
  run_items("kernels::attention_fwd", items, W, [=](index_t item, index_t) {
    const index_t b = item / NKV, kvh = item % NKV;
    const T* kb = k + b * Tn * s.ld_kv + kvh * HS;
    const T* vb = v + b * Tn * s.ld_kv + kvh * HS;
    for (index_t h = kvh * group; h < (kvh + 1) * group; ++h)
      head_forward(out + b * Tn * ld_o + h * HS, att + (b * NH + h) * Tn * Tn, q + b * Tn * s.ld_q + h * HS,
                   kb, vb, s, scale, W == 1);
  });
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* scratch, const T* dout, const T* att, const T* q, const T* k,
                        const T* v, const AttentionShape& s) {
  check_shape(s);
  const index_t Tn = s.T, HS = s.HS, NH = s.NH, NKV = s.NKV, group = NH / NKV, ld_o = NH * HS;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  const index_t items = s.B * NKV;
  const index_t W = std::min(workers_for(items), Tn);  // each worker needs >= 1 row of scratch
  const index_t R = std::min(kRows, Tn / W), slice = Tn * Tn / W;
  run_items("kernels::attention_bwd", items, W, [=](index_t item, index_t w) {
    const index_t b = item / NKV, kvh = item % NKV;
    const index_t kvoff = b * Tn * s.ld_kv + kvh * HS;
    for (index_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      const index_t qoff = b * Tn * s.ld_q + h * HS;
      head_backward(dq + qoff, dk + kvoff, dv + kvoff, scratch + w * slice, R, dout + b * Tn * ld_o + h * HS,
                    att + (b * NH + h) * Tn * Tn, q + qoff, k + kvoff, v + kvoff, s, scale, W == 1);
    }
  });
}

template <class T>
void attention_forward_cached(T* out, T* scratch, const T* q, const T* k, const T* v,
                              const CachedAttentionShape& s) {
  STRATA_CHECK(s.NKV > 0 && s.NH % s.NKV == 0, "attention: NH = ", s.NH,
               " is not a multiple of NKV = ", s.NKV);
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
    detail::for_each(
        "kernels::attention_softmax_cached", Tq,
        [=](index_t i) STRATA_ISA_CLONES {
          T* p = P + i * Tk;
          const index_t len = causal ? pos + i + 1 : Tk;
          const T mx = detail::lane_max(p, len);
          for (index_t u = 0; u < len; ++u) p[u] = detail::exp_fast(p[u] - mx);
          const T inv = T(1) / detail::lane_sum(p, len);
          for (index_t u = 0; u < len; ++u) p[u] *= inv;
          for (index_t u = len; u < Tk; ++u) p[u] = T(0);
        },
        Tk);
    gemm<T>(false, false, Tq, HS, Tk, T(1), P, Tk, vb, s.ld_kv, T(0), out + h * HS, ld_o);
  }
}

#define STRATA_INSTANTIATE(T)                                                                           \
  template void attention_forward_cached<T>(T*, T*, const T*, const T*, const T*,                       \
                                            const CachedAttentionShape&);                               \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&);      \
  template void attention_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                      const AttentionShape&);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
