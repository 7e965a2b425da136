// GEMMs through CBLAS.
//
// gemm: C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with leading dimensions —
// the one entry point every GEMM in strata goes through (attention's strided per-head
// products too).
//
// Linear layer (PyTorch layout, W stored [out, in]):
//   forward   Y[N,out] = X[N,in] W^T + b
//   backward  dX += dY W,  dW += dY^T X,  db += sum_rows dY     (any of dX/dW/db may be null)
#pragma once
#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc);

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, index_t rows, index_t in, index_t out);

template <class T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, index_t rows, index_t in,
                     index_t out);

// Threads of the BLAS (OpenBLAS) and of the threaded CPU kernels (element-wise, norms,
// attention, cross-entropy, AdamW: OpenMP or Kokkos, kernels/cpu/detail.hpp); 0 leaves both
// as the environment set them (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS).
void set_blas_threads(int threads);
int blas_threads();
const char* blas_name();  // e.g. "OpenBLAS 0.3.21 (pthread, SkylakeX)"

// OpenBLAS 0.3.21's DYNAMIC_ARCH does not recognise newer Xeons (this machine: family 6
// model 207 under KVM) and falls back to its Prescott (SSE3) kernels, which run sgemm ~4x
// slower. Returns the core type to force through the environment variable
// OPENBLAS_CORETYPE (read only when libopenblas loads, so a process must set it and
// re-exec itself, or be launched with it), or nullptr when the detected core is fine.
const char* blas_suggested_coretype();

// Call first thing in main(), before MPI or threads start. Sets, where unset, what the BLAS
// and OpenMP runtimes read only when they load, and re-execs this program with it (same pid
// and arguments, so it works under mpirun/srun too):
//   OPENBLAS_CORETYPE  where blas_suggested_coretype() names a core type;
//   OMP_WAIT_POLICY    PASSIVE where the kernels use OpenMP and the BLAS has its own pthreads
//                      (spinning OpenMP workers would steal the BLAS threads' cores).
// A variable the user set is left as it is (`strata info` shows the OpenBLAS core). Returns when
// nothing was needed or the re-exec failed (the program then runs as it is, after a warning).
void ensure_blas_coretype(char** argv);

}  // namespace strata::kernels::cpu
