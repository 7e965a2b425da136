// Token and position embeddings.
//
// Token embedding, vocab-parallel ready: this rank holds rows [vocab_start, vocab_start+V_local)
// of the table wte[V_local, C]. Tokens outside the range produce zeros (the TP all-reduce
// completes them) and no gradient.
//   forward   out[n, :] = wte[tok[n] - vocab_start, :]           (n < N)
//   backward  dwte[tok[n] - vocab_start, :] += dout[n, :]
// Learned positions, wpe[maxT, C], positions 0..T-1 of each of B sequences:
//   forward   out[b, t, :] += wpe[t, :]
//   backward  dwpe[t, :] += sum_b dout[b, t, :]
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void embedding_forward(T* out, const std::int32_t* tokens, const T* wte, index_t N, index_t C,
                       index_t vocab_start, index_t V_local);
template <class T>
void embedding_backward(T* dwte, const T* dout, const std::int32_t* tokens, index_t N, index_t C,
                        index_t vocab_start, index_t V_local);

template <class T>
void position_embedding_forward(T* out, const T* wpe, index_t B, index_t Tlen, index_t C);
template <class T>
void position_embedding_backward(T* dwpe, const T* dout, index_t B, index_t Tlen, index_t C);

}  // namespace strata::kernels::cpu
