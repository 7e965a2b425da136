// LayerNorm and RMSNorm over rows of x[N, C] (math: kernels/cpu/norm.hpp), one warp or
// block per row, statistics in fp32.
//   forward   y (bf16, =), mean/rstd (fp32, =; mean only for LayerNorm)
//   backward  dx (fp32, +=: the residual-stream gradient), dw/db (fp32, +=)
// dy is the bf16 gradient of y (the output of a GEMM's backward). b/db may be null.
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

void layernorm_forward(bf16* y, float* mean, float* rstd, const bf16* x, const bf16* w, const bf16* b,
                       index_t N, index_t C, float eps, cudaStream_t stream);
void layernorm_backward(float* dx, float* dw, float* db, const bf16* dy, const bf16* x, const bf16* w,
                        const float* mean, const float* rstd, index_t N, index_t C, cudaStream_t stream);
void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, index_t N, index_t C, float eps,
                     cudaStream_t stream);
void rmsnorm_backward(float* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, const float* rstd,
                      index_t N, index_t C, cudaStream_t stream);

}  // namespace strata::kernels::cuda
