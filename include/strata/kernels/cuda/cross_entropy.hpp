// Vocab-parallel softmax cross-entropy fused with its backward (math and the three-phase
// TP protocol: kernels/cpu/cross_entropy.hpp). Logits are bf16 [N, ld] (columns V_real..ld-1
// are vocabulary padding), statistics fp32 [N]. With tp == 1 the caller skips the two
// all-reduces between the phases, or calls cross_entropy_fused (one pass with an online
// max/sum, then one writing pass).
//   finish/fused: losses[n] = log s + m - x_t (0 where target < 0); with_grad: the logits
//   are overwritten with (softmax - onehot) * dloss (bf16; padding columns and rows with
//   target < 0 set to 0).
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

void vocab_parallel_ce_max(float* row_max, const bf16* logits, index_t N, index_t V_real, index_t ld,
                           cudaStream_t stream);
// sumexp[n] = sum_v exp(x - m); target_logit[n] = x[target] where this rank owns the target, else 0.
void vocab_parallel_ce_sumexp(float* sumexp, float* target_logit, const bf16* logits, const float* row_max,
                              const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                              index_t vocab_start, cudaStream_t stream);
void vocab_parallel_ce_finish(bf16* logits_to_grad, float* losses, const float* row_max, const float* sumexp,
                              const float* target_logit, const std::int32_t* targets, float dloss,
                              bool with_grad, index_t N, index_t V_real, index_t ld, index_t vocab_start,
                              cudaStream_t stream);
// One rank (vocab_start = 0): the three phases in one kernel, one block per row.
void cross_entropy_fused(bf16* logits_to_grad, float* losses, const std::int32_t* targets, float dloss,
                         bool with_grad, index_t N, index_t V_real, index_t ld, cudaStream_t stream);

}  // namespace strata::kernels::cuda
