// GEMMs through CBLAS, and the linear layer built on them.
//
// gemm (row-major):  C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C,  op = identity or ^T,
//   lda/ldb/ldc = elements between consecutive rows of the matrices as stored. Every GEMM in
//   strata goes through here (attention's per-(b, h) products on strided views too).
//
// Linear layer, PyTorch layout W[out, in]:
//   forward   Y[N,out] = X[N,in] W^T + b          (beta = 0, or Y pre-filled with b, beta = 1)
//   backward  dX[N,in]  += dY[N,out] W[out,in]     (GEMM, beta = 1; beta = 0 assigns when the
//                                                   caller says dX starts here)
//             dW[out,in] += dY^T X                  (GEMM, beta = 1)
//             db[out]    += sum_n dY[n, :]          (column-blocked Kokkos loop)
//   Gradients accumulate (+=) so that weights shared by several consumers and successive
//   micro-batches add up; the caller zeroes them when an accumulation starts.
#include "strata/kernels/cpu/matmul.hpp"

#include <cblas.h>

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include "detail.hpp"
#include "strata/core/error.hpp"

// OpenBLAS extensions. Debian's openblas-pthread cblas.h declares them; other cblas.h
// files (reference CBLAS, BLIS) do not, and redeclaring an identical prototype is harmless.
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_parallel(void);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace strata::kernels::cpu {

namespace {

int as_blas_int(index_t v, const char* what) {
  STRATA_CHECK(v >= 0 && v <= INT_MAX, "gemm: ", what, " = ", v, " does not fit a 32-bit BLAS int");
  return static_cast<int>(v);
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha, const double* A,
               int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  if (M == 0 || N == 0) return;
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, as_blas_int(M, "M"),
            as_blas_int(N, "N"), as_blas_int(K, "K"), alpha, A, as_blas_int(lda, "lda"), B,
            as_blas_int(ldb, "ldb"), beta, C, as_blas_int(ldc, "ldc"));
}

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, index_t rows, index_t in, index_t out) {
  T beta = T(0);
  if (bias) {
    detail::for_each(
        "kernels::linear_bias_fill", rows,
        [=](index_t n) {
          T* yr = y + n * out;
          for (index_t o = 0; o < out; ++o) yr[o] = bias[o];
        },
        out);
    beta = T(1);
  }
  gemm<T>(false, true, rows, out, in, T(1), x, in, w, in, beta, y, out);
}

template <class T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, index_t rows, index_t in,
                     index_t out, bool accumulate_dx) {
  if (dx) gemm<T>(false, false, rows, in, out, T(1), dy, out, w, in, accumulate_dx ? T(1) : T(0), dx, in);
  if (dw) gemm<T>(true, false, out, in, rows, T(1), dy, out, x, in, T(1), dw, in);
  if (dbias) {
    // Threads own disjoint column blocks of db; each walks all rows.
    constexpr index_t CB = detail::kColBlock;
    const index_t nblk = (out + CB - 1) / CB;
    detail::for_each(
        "kernels::linear_bias_bwd", nblk,
        [=](index_t blk) {
          const index_t c0 = blk * CB, nc = std::min<index_t>(out, c0 + CB) - c0;
          T acc[CB] = {};
          for (index_t n = 0; n < rows; ++n) {
            const T* r = dy + n * out + c0;
            for (index_t c = 0; c < nc; ++c) acc[c] += r[c];
          }
          for (index_t c = 0; c < nc; ++c) dbias[c0 + c] += acc[c];
        },
        rows * CB);
  }
}

void set_blas_threads(int threads) {
  if (threads <= 0) return;
  openblas_set_num_threads(threads);
  detail::g_kernel_threads.store(threads, std::memory_order_relaxed);
}

int blas_threads() { return openblas_get_num_threads(); }

detail::BlasThreadsScope::BlasThreadsScope(int threads) : saved_(openblas_get_num_threads()) {
  if (threads != saved_) openblas_set_num_threads(threads);
}
detail::BlasThreadsScope::~BlasThreadsScope() {
  if (openblas_get_num_threads() != saved_) openblas_set_num_threads(saved_);
}

const char* blas_name() {
  // openblas_get_config() returns e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
  return openblas_get_config();
}

const char* coretype_for(std::string_view chosen, bool avx512, bool avx2) {
  // Cores whose sgemm kernels use 512-bit vectors, and those that use at least 256-bit FMA.
  auto any_of = [&](std::initializer_list<std::string_view> names) {
    for (std::string_view name : names)
      if (chosen == name) return true;
    return false;
  };
  const bool has512 = any_of({"SkylakeX", "Cooperlake", "SapphireRapids"});
  const bool has256 = has512 || any_of({"Haswell", "Zen"});
  if (avx512 && !has512) return "SkylakeX";
  if (avx2 && !has256) return "Haswell";
  return nullptr;
}

const char* blas_suggested_coretype() {
#if defined(__x86_64__)
  // SkylakeX's kernels use AVX-512 F, BW, DQ and VL; Haswell's AVX2 with FMA.
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return coretype_for(openblas_get_corename(), avx512, avx2);
#else
  return nullptr;
#endif
}

void ensure_blas_environment(char** argv) {
  const char* core = blas_suggested_coretype();
  const bool retype = core && !std::getenv("OPENBLAS_CORETYPE");  // a user's choice stands
  // OpenMP kernels next to a pthreads BLAS (openblas_get_parallel() == 1): two sets of
  // threads take turns on the same cores, dozens of times a step. libgomp's idle workers spin
  // for ~5 ms after each parallel region, on the cores the next GEMM needs (measured: an MLP
  // block 2x slower on 2 threads); passive ones sleep at once, and the kernels' regions are
  // long enough that the wake-up (~10-20 us) does not count. OpenBLAS's idle workers spin
  // (sched_yield) for 2^28 TSC cycles, ~0.1 s, after each GEMM, on the cores the attention,
  // AdamW and element-wise kernels then run on (measured, GPT-2 124M on 2 threads: those took
  // ~1.6x their time, the step ~4 % longer); 2^22 cycles (~1.5 ms) still bridges the short
  // gaps between a layer's GEMMs. Both runtimes read the variables when they load, hence the
  // re-run. An OpenMP BLAS (STRATA_OPENMP_BLAS) runs on the kernels' own pool: nothing to set.
  const bool pthreads_blas = detail::kUseOpenMP && openblas_get_parallel() == 1;
  const bool passive = pthreads_blas && !std::getenv("OMP_WAIT_POLICY");
  const bool timeout = pthreads_blas && !std::getenv("OPENBLAS_THREAD_TIMEOUT");
  if (!retype && !passive && !timeout) return;
  if (retype) setenv("OPENBLAS_CORETYPE", core, 1);
  if (passive) setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  if (timeout) setenv("OPENBLAS_THREAD_TIMEOUT", "22", 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr,
               "strata: warning: could not re-run with OPENBLAS_CORETYPE=%s OMP_WAIT_POLICY=%s "
               "OPENBLAS_THREAD_TIMEOUT=%s (%s)\n",
               retype ? core : "(unchanged)", passive ? "PASSIVE" : "(unchanged)",
               timeout ? "22" : "(unchanged)", std::strerror(errno));
}

#define STRATA_INSTANTIATE(T)                                                                              \
  template void gemm<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t, const T*, index_t, T, \
                        T*, index_t);                                                                      \
  template void linear_forward<T>(T*, const T*, const T*, const T*, index_t, index_t, index_t);            \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, index_t, index_t, index_t, bool);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu
