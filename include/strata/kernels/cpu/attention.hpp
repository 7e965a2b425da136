// Scaled dot-product attention with grouped-query heads (Ainslie et al. 2023): query head h
// reads key/value head h / (NH / NKV).
//   q[B, T, NH, HS], k, v [B, T, NKV, HS] (rows may be strided: ld_q, ld_kv elements between
//   consecutive (b, t) rows, so q/k/v can live inside one fused QKV buffer)
//   out and dout are contiguous [B, T, NH, HS]; dq, dk, dv use the strides of q, k, v
//   (ld_q, ld_kv), e.g. one fused dQKV buffer.
//   S = q k^T / sqrt(HS) per (b, h), masked to s <= t when causal
//   P = softmax(S) (saved: att[B, NH, T, T], zero above the diagonal when causal)
//   out[B, T, NH, HS] = P v
// Backward (accumulating):
//   dP = dout v^T,  dv += P^T dout,  dS = P * (dP - rowsum(dP * P)),
//   dq += dS k / sqrt(HS),  dk += dS^T q / sqrt(HS).
// Each (b, h) product is a CBLAS GEMM on strided views; the softmax is a Kokkos loop.
// scratch: T*T elements (dP/dS work space), provided by the caller (no allocation inside).
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

struct AttentionShape {
  index_t B, T, NH, NKV, HS;
  index_t ld_q, ld_kv;  // row strides of q and of k/v, in elements
  bool causal;
};

template <class T>
void attention_forward(T* out, T* att, const T* q, const T* k, const T* v, const AttentionShape& s);
template <class T>
void attention_backward(T* dq, T* dk, T* dv, T* scratch, const T* dout, const T* att, const T* q, const T* k,
                        const T* v, const AttentionShape& s);

// Inference with a key/value cache (one sequence): Tq new query rows at absolute positions
// pos..pos+Tq-1 attend over the first pos + Tq rows of the cache (the new rows' keys and values
// already written there).
//   q[Tq, NH, HS] (row stride ld_q), k/v cache [>= pos+Tq, NKV, HS] (row stride ld_kv)
//   S[i, u] = q_i . k_u / sqrt(HS) for u < pos + Tq, masked to u <= pos + i when causal
//   out[Tq, NH, HS] = softmax_rows(S) V       (contiguous)
// With pos = 0 and Tq = T this is attention_forward for B = 1. Decoding (Tq = 1) costs
// O((pos + 1) HS) per head instead of re-running the whole prefix.
// scratch: Tq * (pos + Tq) elements (the scores of one head), from the caller.
struct CachedAttentionShape {
  index_t Tq, pos, NH, NKV, HS;
  index_t ld_q, ld_kv;
  bool causal;
};
template <class T>
void attention_forward_cached(T* out, T* scratch, const T* q, const T* k, const T* v,
                              const CachedAttentionShape& s);

}  // namespace strata::kernels::cpu
