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

#include <string_view>

#include "strata/kernels/cpu/common.hpp"

namespace strata::kernels::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc);

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, index_t rows, index_t in, index_t out);

// accumulate_dx = false: dX is assigned (GEMM beta = 0) instead of added to; dW and db always
// accumulate.
template <class T>
void linear_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w, index_t rows, index_t in,
                     index_t out, bool accumulate_dx = true);

// Threads of the BLAS (OpenBLAS) and of the threaded CPU kernels (element-wise, norms,
// attention, cross-entropy, AdamW: OpenMP or Kokkos, kernels/cpu/detail.hpp); 0 leaves both
// as the environment set them (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS).
void set_blas_threads(int threads);
int blas_threads();
const char* blas_name();  // e.g. "OpenBLAS 0.3.21 (pthread, SkylakeX)"

// OpenBLAS 0.3.21's DYNAMIC_ARCH picks its kernels from a table of the CPUs it knew in 2022;
// a Xeon it does not recognise (family 6 model 207 under KVM) gets its Prescott (SSE3)
// kernels, ~4x slower. An OPENBLAS_CORETYPE in the environment can also force narrower
// kernels than the CPU has (this workplace's shells set Haswell: AVX2 kernels on an AVX-512
// Zen 5, half its sgemm speed). Returns the core type whose kernels use the widest vectors
// the CPU has when OpenBLAS's current core does not (OPENBLAS_CORETYPE is read only when
// libopenblas loads, so a process must set it and re-exec itself, or be launched with it),
// or nullptr when the current core is already that wide.
const char* blas_suggested_coretype();
// The rule behind it: `chosen` is OpenBLAS's core name (openblas_get_corename()); avx512 means
// the CPU has AVX-512 F/BW/DQ/VL (what the SkylakeX kernels use), avx2 AVX2 with FMA.
const char* coretype_for(std::string_view chosen, bool avx512, bool avx2);

// Call first thing in main(), before MPI or threads start. Sets, where unset, what the BLAS
// and OpenMP runtimes read only when they load, and re-execs this program with it (same pid
// and arguments, so it works under mpirun/srun too):
//   OPENBLAS_CORETYPE        where blas_suggested_coretype() names a core type;
//   OMP_WAIT_POLICY          PASSIVE  } where the kernels use OpenMP and the BLAS has its own
//   OPENBLAS_THREAD_TIMEOUT  22       } pthreads (an OpenMP BLAS shares the kernels' pool):
//     each runtime's idle workers would spin on the cores the other's threads need; OpenMP's
//     sleep at once, OpenBLAS's after 2^22 cycles (~1.5 ms) instead of 2^28 (~0.1 s).
// A variable the user set is left as it is (`strata info` shows the OpenBLAS core). Returns when
// nothing was needed or the re-exec failed (the program then runs as it is, after a warning).
void ensure_blas_environment(char** argv);

}  // namespace strata::kernels::cpu
