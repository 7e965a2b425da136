// Element-wise and reduction glue kernels.
//   fill        x = value
//   copy        y = x
//   add         y = a + b
//   accumulate  y += x            (gradient accumulation, residual backward)
//   scale       x *= alpha        (gradient clipping, loss scaling)
//   sum_squares sum_i x_i^2       (gradient norm), accumulated in double whatever T is
// All are one pass over contiguous memory: for_blocks hands each Kokkos iteration a block
// of kBlock elements whose inner loop GCC vectorises.
#include "strata/kernels/cpu/elementwise.hpp"

#include "detail.hpp"

namespace strata::kernels::cpu {

template <class T>
void fill(T* x, T value, index_t n) {
  detail::for_blocks("kernels::fill", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) x[i] = value;
  });
}

template <class T>
void copy(T* y, const T* x, index_t n) {
  detail::for_blocks("kernels::copy", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) y[i] = x[i];
  });
}

template <class T>
void add(T* y, const T* a, const T* b, index_t n) {
  detail::for_blocks("kernels::add", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) y[i] = a[i] + b[i];
  });
}

template <class T>
void accumulate(T* y, const T* x, index_t n) {
  detail::for_blocks("kernels::accumulate", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) y[i] += x[i];
  });
}

template <class T>
void scale(T* x, T alpha, index_t n) {
  detail::for_blocks("kernels::scale", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    for (index_t i = i0; i < i1; ++i) x[i] *= alpha;
  });
}

template <class T>
double sum_squares(const T* x, index_t n) {
  return detail::sum_blocks("kernels::sum_squares", n, [=](index_t i0, index_t i1) STRATA_ISA_CLONES {
    const T* xb = x + i0;
    return detail::long_sum(i1 - i0, [xb](index_t i) {
      const double v = static_cast<double>(xb[i]);
      return v * v;
    });
  });
}

template <class T>
void add_bias(T* y, const T* bias, index_t rows, index_t cols) {
  detail::for_each(
      "kernels::add_bias", rows,
      [=](index_t r) STRATA_ISA_CLONES {
        T* yr = y + r * cols;
        for (index_t c = 0; c < cols; ++c) yr[c] += bias[c];
      },
      cols);
}

const char* loop_isa() {
#if STRATA_HAVE_ISA_CLONES
  // The condition of GCC's resolver for a target_clones("arch=x86-64-v4") copy.
  return __builtin_cpu_supports("x86-64-v4") ? "x86-64-v4 (AVX-512) clones, chosen at run time"
                                             : "the build target's (this CPU has no x86-64-v4)";
#elif defined(__AVX512F__)
  return "the build target's (it has AVX-512)";
#else
  return "the build target's (no x86-64-v4 clones in this build)";
#endif
}

#define STRATA_INSTANTIATE(T)                                \
  template void add_bias<T>(T*, const T*, index_t, index_t); \
  template void fill<T>(T*, T, index_t);                     \
  template void copy<T>(T*, const T*, index_t);              \
  template void add<T>(T*, const T*, const T*, index_t);     \
  template void accumulate<T>(T*, const T*, index_t);        \
  template void scale<T>(T*, T, index_t);                    \
  template double sum_squares<T>(const T*, index_t);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
