// Rotary position embedding (Su et al. 2021, RoFormer), "rotate-half" pairing as in
// GPT-NeoX and Hugging Face LLaMA: within each head, element i pairs with i + HS/2.
// For position t and pair index i < HS/2: angle = t * theta^(-2i/HS),
//   (x_i, x_{i+HS/2}) -> (x_i cos - x_{i+HS/2} sin, x_i sin + x_{i+HS/2} cos).
// x is [B, T, H, HS] (H = NH for queries, NKV for keys), rotated IN PLACE.
// The backward is the inverse rotation applied in place to the gradient (rotation is
// orthogonal: d/dx of R x is R^T). pos_offset shifts positions (generation with a cache).
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void rope_forward(T* x, index_t B, index_t Tlen, index_t H, index_t HS, double theta, index_t pos_offset = 0);
template <class T>
void rope_backward(T* dx, index_t B, index_t Tlen, index_t H, index_t HS, double theta,
                   index_t pos_offset = 0);

}  // namespace strata::kernels::cpu
