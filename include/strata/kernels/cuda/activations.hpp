// MLP activations (math: kernels/cpu/activations.hpp), bf16 in and out, fp32 arithmetic.
// The backward kernels overwrite (=) their outputs.
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

void gelu_forward(bf16* y, const bf16* x, index_t n, cudaStream_t stream);
void gelu_backward(bf16* dx, const bf16* dy, const bf16* x, index_t n, cudaStream_t stream);
void swiglu_forward(bf16* y, const bf16* gate, const bf16* up, index_t n, cudaStream_t stream);
void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dy, const bf16* gate, const bf16* up, index_t n,
                     cudaStream_t stream);

}  // namespace strata::kernels::cuda
