// Token and position embeddings.
//
// Token embedding, vocab-parallel: this rank holds rows [vocab_start, vocab_start + V_local)
// of the table, wte[V_local, C].
//   forward   out[n, :] = wte[tok[n] - vocab_start, :]  if tok[n] is in range, else 0
//             (the tensor-parallel all-reduce of out completes the rows other ranks hold)
//   backward  dwte[tok[n] - vocab_start, :] += dout[n, :]  for in-range tokens only
// Learned positions wpe[maxT, C], positions 0..T-1 of each of B sequences of out[B, T, C]:
//   forward   out[b, t, :] += wpe[t, :]
//   backward  dwpe[t, :] += sum_b dout[b, t, :]
// Backward accumulates (+=): a tied wte also receives the LM head's gradient.
// The scatter-add of embedding_backward runs over column blocks of C (each thread owns
// disjoint columns and walks the tokens in order), so repeated tokens never race and the
// sum order is deterministic.
#include "strata/kernels/cpu/embedding.hpp"

#include "detail.hpp"

namespace strata::kernels::cpu {

template <class T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* wte, index_t N, index_t C,
                       index_t vocab_start, index_t V_local) {
  detail::for_each(
      "kernels::embedding_fwd", N,
      [=](index_t n) STRATA_ISA_CLONES {
        const index_t row = static_cast<index_t>(tokens[n]) - vocab_start;
        T* o = out + n * C;
        if (row >= 0 && row < V_local) {
          const T* w = wte + row * C;
          for (index_t c = 0; c < C; ++c) o[c] = w[c];
        } else {
          for (index_t c = 0; c < C; ++c) o[c] = T(0);
        }
      },
      C);
}

template <class T>
void embedding_backward(T* dwte, const T* dout, const std::int32_t* tokens, index_t N, index_t C,
                        index_t vocab_start, index_t V_local) {
  constexpr index_t CB = detail::kColBlock;
  const index_t nblk = (C + CB - 1) / CB;
  detail::for_each(
      "kernels::embedding_bwd", nblk,
      [=](index_t blk) STRATA_ISA_CLONES {
        const index_t c0 = blk * CB, nc = std::min<index_t>(C, c0 + CB) - c0;
        for (index_t n = 0; n < N; ++n) {
          const index_t row = static_cast<index_t>(tokens[n]) - vocab_start;
          if (row < 0 || row >= V_local) continue;
          T* d = dwte + row * C + c0;
          const T* g = dout + n * C + c0;
          for (index_t c = 0; c < nc; ++c) d[c] += g[c];
        }
      },
      N * CB);
}

template <class T>
void position_embedding_forward(T* out, const T* wpe, index_t B, index_t Tlen, index_t C) {
  detail::for_each(
      "kernels::position_embedding_fwd", B * Tlen,
      [=](index_t bt) STRATA_ISA_CLONES {
        T* o = out + bt * C;
        const T* w = wpe + (bt % Tlen) * C;
        for (index_t c = 0; c < C; ++c) o[c] += w[c];
      },
      C);
}

template <class T>
void position_embedding_backward(T* dwpe, const T* dout, index_t B, index_t Tlen, index_t C) {
  // One thread per position t: dwpe rows are disjoint, the sum over b is sequential.
  detail::for_each(
      "kernels::position_embedding_bwd", Tlen,
      [=](index_t t) STRATA_ISA_CLONES {
        T* d = dwpe + t * C;
        for (index_t b = 0; b < B; ++b) {
          const T* g = dout + (b * Tlen + t) * C;
          for (index_t c = 0; c < C; ++c) d[c] += g[c];
        }
      },
      B * C);
}

#define STRATA_INSTANTIATE(T)                                                                                \
  template void embedding_forward<T>(T*, const std::int32_t*, const T*, index_t, index_t, index_t, index_t); \
  template void embedding_backward<T>(T*, const T*, const std::int32_t*, index_t, index_t, index_t,          \
                                      index_t);                                                              \
  template void position_embedding_forward<T>(T*, const T*, index_t, index_t, index_t);                      \
  template void position_embedding_backward<T>(T*, const T*, index_t, index_t, index_t);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
