// Shared vocabulary of the CPU kernels.
//
// Glossary (STYLE.md): B batch, T sequence, C model width, NH query heads, NKV key/value
// heads, HS head size, V vocab, F MLP hidden width, N rows (= B*T) of a [N, C] activation.
//
// Conventions for every kernel family:
// - row-major, contiguous unless a leading dimension is given;
// - the scalar type T is float (training) or double (finite-difference tests); every
//   kernel is explicitly instantiated for both;
// - forward kernels ASSIGN their outputs;
// - backward kernels ACCUMULATE (+=) into every gradient they produce, activation and
//   parameter gradients alike. Accumulation is what lets one parameter feed several
//   consumers (tied embeddings, the residual stream) and lets micro-batches add up;
//   the caller zeroes gradient buffers when a new accumulation starts.
// - element-wise and reduction loops are Kokkos parallel_for / parallel_reduce with a
//   label "kernels::<name>"; GEMMs go to CBLAS.
#pragma once
#include <cstdint>

namespace strata::kernels::cpu {
using index_t = std::int64_t;
}  // namespace strata::kernels::cpu
