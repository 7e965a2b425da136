// Token and position embeddings on the GPU; the math and the vocab-parallel convention
// are those of kernels/cpu/embedding.hpp (tokens outside [vocab_start, vocab_start +
// V_local) give zero rows and no gradient).
//   forward   out[n, :] = wte[tok[n] - vocab_start, :]                    (bf16, =)
//   backward  dwte[tok[n] - vocab_start, :] += dout[n, :]                 (fp32, atomics)
//   position  out[b, t, :] += wpe[t, :];  dwpe[t, :] += sum_b dout[b, t, :]  (no atomics)
// The token backward adds with atomics, so the order of the fp32 additions of repeated
// tokens varies from run to run (differences at fp32 rounding level).
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

void embedding_forward(bf16* out, const std::int32_t* tokens, const bf16* wte, index_t N, index_t C,
                       index_t vocab_start, index_t V_local, cudaStream_t stream);
// dout is the fp32 gradient of the residual stream.
void embedding_backward(float* dwte, const float* dout, const std::int32_t* tokens, index_t N, index_t C,
                        index_t vocab_start, index_t V_local, cudaStream_t stream);
void position_embedding_forward(bf16* out, const bf16* wpe, index_t B, index_t T, index_t C,
                                cudaStream_t stream);
void position_embedding_backward(float* dwpe, const float* dout, index_t B, index_t T, index_t C,
                                 cudaStream_t stream);

}  // namespace strata::kernels::cuda
