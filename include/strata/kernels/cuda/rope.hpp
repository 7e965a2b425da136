// Rotary position embedding, "rotate-half" pairing (math: kernels/cpu/rope.hpp), in place on
// rows of x: [B*T rows, H heads of HS] with row stride ld elements.
// The angles come from a table computed once on the host in double (rope_table) and
// uploaded: cos_sin[t, i] = (cos, sin) of t * theta^(-2i/HS) for t < max_T, i < HS/2, so
// long positions keep full fp32 accuracy.
//   forward   (x_i, x_{i+HS/2}) -> (x_i c - x_{i+HS/2} s, x_i s + x_{i+HS/2} c)
//   backward  the inverse rotation (s -> -s) applied in place to the gradient.
#pragma once
#include <vector>

#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

// Host: max_T * HS/2 (cos, sin) pairs, interleaved, for upload into a device float2 table.
std::vector<float> rope_table(index_t max_T, index_t HS, double theta);

void rope_forward(bf16* x, const float* cos_sin, index_t B, index_t T, index_t H, index_t HS, index_t ld,
                  cudaStream_t stream);
void rope_backward(bf16* dx, const float* cos_sin, index_t B, index_t T, index_t H, index_t HS, index_t ld,
                   cudaStream_t stream);

}  // namespace strata::kernels::cuda
