// Block attention with the log-sum-exp merge (ring_attention.hpp). Per (b, query head): one
// GEMM for the scores, a row loop for the masked softmax statistics, GEMMs for the products.
// The (b, h) pairs run in turn (the GEMMs use the BLAS threads); heads of one KV group add into
// the same dk / dv rows one after another, so the sums have a fixed order.
#include "strata/kernels/cpu/ring_attention.hpp"

#include <cmath>
#include <limits>

#include "detail.hpp"
#include "strata/core/error.hpp"
#include "strata/kernels/cpu/matmul.hpp"

namespace strata::kernels::cpu {

namespace {

void check_shape(const BlockAttentionShape& s) {
  STRATA_CHECK(s.NKV > 0 && s.NH % s.NKV == 0, "block attention: NH = ", s.NH,
               " is not a multiple of NKV = ", s.NKV);
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS, "block attention: ld_q = ", s.ld_q,
               ", ld_kv = ", s.ld_kv, " are smaller than the heads they hold");
}

// Keys of the block visible to query row t: [0, visible(t)).
inline index_t visible(const BlockAttentionShape& s, index_t t) {
  if (!s.causal) return s.Tk;
  const index_t n = s.q_pos + t - s.k_pos + 1;
  return n <= 0 ? 0 : (n > s.Tk ? s.Tk : n);
}

// A block no query row sees (every key after every query).
inline bool fully_masked(const BlockAttentionShape& s) { return s.causal && s.k_pos > s.q_pos + s.Tq - 1; }

}  // namespace

template <class T>
void block_attention_forward(T* out, T* lse, T* work, const T* q, const T* k, const T* v,
                             const BlockAttentionShape& s) {
  check_shape(s);
  if (fully_masked(s) || s.Tq == 0 || s.Tk == 0) return;
  const index_t Tq = s.Tq, Tk = s.Tk, HS = s.HS, NH = s.NH, group = s.NH / s.NKV, ld_o = NH * HS;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  const T neg_inf = -std::numeric_limits<T>::infinity();
  T* P = work;             // [Tq, Tk]
  T* Ob = work + Tq * Tk;  // [Tq, HS]
  for (index_t b = 0; b < s.B; ++b)
    for (index_t h = 0; h < NH; ++h) {
      const T* qb = q + b * s.bs_q + h * HS;
      const T* kb = k + b * s.bs_kv + (h / group) * HS;
      const T* vb = v + b * s.bs_kv + (h / group) * HS;
      T* ob = out + b * s.bs_o + h * HS;
      T* lb = lse + b * s.bs_l + h;
      gemm<T>(false, true, Tq, Tk, HS, scale, qb, s.ld_q, kb, s.ld_kv, T(0), P, Tk);
      // P := softmax of the visible scores (zero elsewhere), block_lse its row log-sum-exp.
      T* block_lse = Ob + Tq * HS;  // [Tq]; Tq <= Tq Tk, inside the work space
      for (index_t t = 0; t < Tq; ++t) {
        T* p = P + t * Tk;
        const index_t len = visible(s, t);
        block_lse[t] = neg_inf;
        if (len > 0) {
          T mx = p[0];
          for (index_t u = 1; u < len; ++u) mx = std::max(mx, p[u]);
          T sum = 0;
          for (index_t u = 0; u < len; ++u) sum += (p[u] = std::exp(p[u] - mx));
          const T inv = T(1) / sum;
          for (index_t u = 0; u < len; ++u) p[u] *= inv;
          block_lse[t] = mx + std::log(sum);
        }
        for (index_t u = len; u < Tk; ++u) p[u] = T(0);
      }
      gemm<T>(false, false, Tq, HS, Tk, T(1), P, Tk, vb, s.ld_kv, T(0), Ob, HS);
      for (index_t t = 0; t < Tq; ++t) {
        const T lb_blk = block_lse[t];
        if (lb_blk == neg_inf) continue;  // the row sees no key of this block
        T& l = lb[t * NH];
        const T m = std::max(l, lb_blk);
        const T l_new = m + std::log(std::exp(l - m) + std::exp(lb_blk - m));
        const T a = std::exp(l - l_new), c = std::exp(lb_blk - l_new);
        T* o = ob + t * ld_o;
        const T* ot = Ob + t * HS;
        for (index_t i = 0; i < HS; ++i) o[i] = a * o[i] + c * ot[i];
        l = l_new;
      }
    }
}

template <class T>
void block_attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* out, const T* lse,
                              const T* q, const T* k, const T* v, const BlockAttentionShape& s) {
  check_shape(s);
  if (fully_masked(s) || s.Tq == 0 || s.Tk == 0) return;
  const index_t Tq = s.Tq, Tk = s.Tk, HS = s.HS, NH = s.NH, group = s.NH / s.NKV, ld_o = NH * HS;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(HS)));
  T* P = work;             // [Tq, Tk]
  T* dP = work + Tq * Tk;  // [Tq, Tk]
  for (index_t b = 0; b < s.B; ++b)
    for (index_t h = 0; h < NH; ++h) {
      const index_t kvoff = b * s.bs_kv + (h / group) * HS;
      const T* qb = q + b * s.bs_q + h * HS;
      const T* kb = k + kvoff;
      const T* vb = v + kvoff;
      const T* ob = out + b * s.bs_o + h * HS;
      const T* dob = dout + b * s.bs_o + h * HS;
      const T* lb = lse + b * s.bs_l + h;
      gemm<T>(false, true, Tq, Tk, HS, scale, qb, s.ld_q, kb, s.ld_kv, T(0), P, Tk);
      gemm<T>(false, true, Tq, Tk, HS, T(1), dob, ld_o, vb, s.ld_kv, T(0), dP, Tk);
      for (index_t t = 0; t < Tq; ++t) {
        T* p = P + t * Tk;
        T* d = dP + t * Tk;
        const index_t len = visible(s, t);
        const T l = lb[t * NH];
        T D = 0;
        for (index_t i = 0; i < HS; ++i) D += dob[t * ld_o + i] * ob[t * ld_o + i];
        for (index_t u = 0; u < len; ++u) {
          p[u] = std::exp(p[u] - l);
          d[u] = p[u] * (d[u] - D);
        }
        for (index_t u = len; u < Tk; ++u) p[u] = d[u] = T(0);
      }
      // dv += P^T dout, dq += s dS K, dk += s dS^T Q
      gemm<T>(true, false, Tk, HS, Tq, T(1), P, Tk, dob, ld_o, T(1), dv + kvoff, s.ld_kv);
      gemm<T>(false, false, Tq, HS, Tk, scale, dP, Tk, kb, s.ld_kv, T(1), dq + b * s.bs_q + h * HS, s.ld_q);
      gemm<T>(true, false, Tk, HS, Tq, scale, dP, Tk, qb, s.ld_q, T(1), dk + kvoff, s.ld_kv);
    }
}

#define STRATA_INSTANTIATE(T)                                                                       \
  template void block_attention_forward<T>(T*, T*, T*, const T*, const T*, const T*,                \
                                           const BlockAttentionShape&);                             \
  template void block_attention_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                            const T*, const T*, const BlockAttentionShape&);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
