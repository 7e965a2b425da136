// Softmax cross-entropy over logits[N, V] (row stride ld >= V; columns V..ld-1 are padding
// and ignored) with integer targets[N]; a negative target means "no loss at this row".
//   loss[n] = logsumexp(logits[n]) - logits[n, target[n]]
//   dlogits[n] = (softmax(logits[n]) - onehot(target[n])) * dloss[n]
// The fused form computes the loss and overwrites the logits with their gradient in one
// pass over the (large: N x V) buffer, so the model never holds logits and dlogits at once.
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const std::int32_t* targets, index_t N, index_t V,
                           index_t ld);
// dlogits += (softmax - onehot) * dlosses[n]
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const std::int32_t* targets, const T* dlosses,
                            index_t N, index_t V, index_t ld);
// losses[n] as in the forward; logits[n, :V] := (softmax - onehot) * dloss (padding set to 0).
template <class T>
void cross_entropy_fused(T* logits_to_grad, T* losses, const std::int32_t* targets, T dloss, index_t N,
                         index_t V, index_t ld);

// Vocab-parallel cross-entropy (Megatron-LM, Shoeybi et al. 2019, section 3): each of the
// tp ranks holds logits for the vocabulary slice [vocab_start, vocab_start + V_local) (of
// which the first V_real columns are real; the rest pad the vocabulary to a multiple of tp).
// The logits are never gathered; three reductions over the TP group combine the pieces:
//   1. row_max      local max of each row          -> all-reduce(max) -> m
//   2. sumexp, xt   sum_v e^{x - m}, and x[target] where this rank owns the target (else 0)
//                                                   -> all-reduce(sum) -> s, x_t
//   3. finish       loss = log s + m - x_t; when with_grad, the local logits are overwritten
//                   with (e^{x - m} / s - [v == target]) * dloss (padding zeroed).
// Rows with target < 0 get loss 0 and gradient 0.
template <class T>
void vocab_parallel_ce_max(T* row_max, const T* logits, index_t N, index_t V_real, index_t ld);
template <class T>
void vocab_parallel_ce_sumexp(T* sumexp, T* target_logit, const T* logits, const T* row_max,
                              const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                              index_t vocab_start);
template <class T>
void vocab_parallel_ce_finish(T* logits_to_grad, T* losses, const T* row_max, const T* sumexp,
                              const T* target_logit, const std::int32_t* targets, T dloss, bool with_grad,
                              index_t N, index_t V_real, index_t ld, index_t vocab_start);

}  // namespace strata::kernels::cpu
