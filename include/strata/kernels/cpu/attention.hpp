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
void attention_backward(T* dq, T* dk, T* dv, T* scratch, const T* dout, const T* att, const T* q,
                        const T* k, const T* v, const AttentionShape& s);

}  // namespace strata::kernels::cpu
