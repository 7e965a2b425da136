// Elementwise kernels: casts, fills, residual adds, biases. n counts elements.
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

// Casts (round to nearest even into bf16).
void cast_f32_to_bf16(bf16* y, const float* x, index_t n, cudaStream_t stream);
void cast_bf16_to_f32(float* y, const bf16* x, index_t n, cudaStream_t stream);
void fill_f32(float* y, float value, index_t n, cudaStream_t stream);
void fill_bf16(bf16* y, float value, index_t n, cudaStream_t stream);

// y = a + b (bf16 residual stream; y may alias a or b).
void add_bf16(bf16* y, const bf16* a, const bf16* b, index_t n, cudaStream_t stream);
// y[r, c] += bias[c] for r < rows (bias in bf16).
void add_bias_bf16(bf16* y, const bf16* bias, index_t rows, index_t cols, cudaStream_t stream);
// y (fp32) += x (fp32), and y (fp32) += x (bf16).
void accumulate_f32(float* y, const float* x, index_t n, cudaStream_t stream);
void accumulate_f32_bf16(float* y, const bf16* x, index_t n, cudaStream_t stream);
// db[c] += sum_r dy[r, c]: the bias gradient, fp32 accumulation of a bf16 or fp32 gradient.
void bias_grad_bf16(float* db, const bf16* dy, index_t rows, index_t cols, cudaStream_t stream);
void bias_grad_f32(float* db, const float* dy, index_t rows, index_t cols, cudaStream_t stream);
// out += sum of x[i]^2 over n fp32 elements (out: one fp32 on the device; block partial
// sums added atomically). For the global gradient norm.
void sum_squares_f32(float* out, const float* x, index_t n, cudaStream_t stream);

}  // namespace strata::kernels::cuda
