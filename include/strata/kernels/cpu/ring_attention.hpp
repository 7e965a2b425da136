// Block attention for ring (context-parallel) attention: one block of query rows against one
// block of key/value rows at given sequence positions, with the row log-sum-exp, so that the
// results of the blocks of a whole sequence merge exactly (the online softmax of
// Milakov & Gimelshein 2018 / FlashAttention, Dao et al. 2022; ring attention, Liu et al. 2023).
//
// Shapes (grouped-query heads as attention.hpp: query head h reads KV head h / (NH / NKV)):
//   q[B, Tq, NH, HS]: row stride ld_q, batch stride bs_q
//   k, v[B, Tk, NKV, HS]: row stride ld_kv, batch stride bs_kv
//   out[B, Tq, NH, HS]: row stride NH HS, batch stride bs_o
//   lse[B, Tq, NH]: row stride NH, batch stride bs_l
// Query row t sits at sequence position q_pos + t, key row u at k_pos + u; causal masks
// key positions after the query's. s = 1/sqrt(HS).
//
// Forward (merging into a running result): with S = s Q K^T (masked), the block's
//   lse_b = log sum_u exp(S[t, u]),   O_b = softmax(S) V,
// and the running (out, lse) become
//   lse' = log(exp(lse) + exp(lse_b)),   out' = exp(lse - lse') out + exp(lse_b - lse') O_b.
// Start from out = 0, lse = -inf; after every key block of the sequence has been merged, out is
// softmax attention over the whole sequence and lse its row log-sum-exp. A row that sees no key
// of the block is left as it is; a block no row can see returns at once.
// Backward (accumulating), from the FINAL out and lse of the whole sequence:
//   P = exp(S - lse),  D = rowsum(dout * out),  dP = dout V^T,  dS = P * (dP - D)
//   dv += P^T dout,  dq += s dS K,  dk += s dS^T Q
// so the gradient of the whole attention is the sum of the blocks' (in any order).
// work: block_attention_work_elems(Tq, Tk, HS) elements from the caller.
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

struct BlockAttentionShape {
  index_t B, Tq, Tk, NH, NKV, HS;
  index_t ld_q, ld_kv;              // row strides of q and of k/v
  index_t bs_q, bs_kv, bs_o, bs_l;  // batch strides of q, k/v, out, lse
  index_t q_pos, k_pos;             // sequence position of the first query row, first key row
  bool causal;
};

inline index_t block_attention_work_elems(index_t Tq, index_t Tk, index_t HS) {
  return 2 * Tq * Tk + Tq * HS;
}

template <class T>
void block_attention_forward(T* out, T* lse, T* work, const T* q, const T* k, const T* v,
                             const BlockAttentionShape& s);
template <class T>
void block_attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* out, const T* lse,
                              const T* q, const T* k, const T* v, const BlockAttentionShape& s);

}  // namespace strata::kernels::cpu
