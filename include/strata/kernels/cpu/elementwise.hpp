// Small element-wise and reduction kernels the model and optimizer glue needs.
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void fill(T* x, T value, index_t n);  // x = value
template <class T>
void copy(T* y, const T* x, index_t n);  // y = x
template <class T>
void add(T* y, const T* a, const T* b, index_t n);  // y = a + b
template <class T>
void accumulate(T* y, const T* x, index_t n);  // y += x
template <class T>
void scale(T* x, T alpha, index_t n);  // x *= alpha
template <class T>
double sum_squares(const T* x, index_t n);  // sum x^2 (in double)
// y[r, :] += bias for each of `rows` rows of width `cols` (a bias applied after a reduction)
template <class T>
void add_bias(T* y, const T* bias, index_t rows, index_t cols);

// Which copy of the kernels' element-wise loops this process runs (src/kernels/cpu/detail.hpp,
// "ISA clones"): "x86-64-v4 (AVX-512)" where the build made the clones and the CPU has
// x86-64-v4, else "the build target's" with the reason; for `strata info`.
const char* loop_isa();

}  // namespace strata::kernels::cpu
