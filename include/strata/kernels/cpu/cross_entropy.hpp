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
void cross_entropy_forward(T* losses, const T* logits, const std::int32_t* targets, index_t N,
                           index_t V, index_t ld);
// dlogits += (softmax - onehot) * dlosses[n]
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const std::int32_t* targets,
                            const T* dlosses, index_t N, index_t V, index_t ld);
// losses[n] as in the forward; logits[n, :V] := (softmax - onehot) * dloss (padding set to 0).
template <class T>
void cross_entropy_fused(T* logits_to_grad, T* losses, const std::int32_t* targets, T dloss,
                         index_t N, index_t V, index_t ld);

}  // namespace strata::kernels::cpu
