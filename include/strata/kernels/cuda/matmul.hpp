// GEMMs on tensor cores: bf16 inputs, fp32 accumulation (CUBLAS_COMPUTE_32F), through
// cuBLASLt (heuristic algorithm choice, cached per shape) with cuBLAS (cublasGemmEx) as
// the fallback where cuBLASLt finds no algorithm. Row-major views, as in
// kernels/cpu/matmul.hpp; the row-major C = A B is computed as the column-major C^T = B^T A^T.
//
// Linear layer (PyTorch layout, W stored [out, in]):
//   forward   Y[N,out] = X[N,in] W^T (+ b)                        bf16 =
//   backward  dX = or += dY W  (bf16),  dW += dY^T X  (fp32),  db += sum_rows dY (fp32)
// dW accumulates in fp32 straight from the bf16 operands (cuBLASLt with an fp32 C/D), so
// gradients of several micro-batches sum without rounding to bf16.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <map>
#include <tuple>

#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

enum class GemmOut { bf16, f32 };

// One per stream: the handles, a workspace and the cache of chosen algorithms. Move-only.
class Blas {
 public:
  explicit Blas(cudaStream_t stream, std::size_t workspace_bytes = 32u << 20);
  ~Blas();
  Blas(Blas&& other) noexcept;
  Blas& operator=(Blas&&) = delete;
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  cudaStream_t stream() const { return stream_; }
  // Forces cublasGemmEx (tests compare the two paths; benchmarks report both).
  void set_force_cublas(bool on) { force_cublas_ = on; }

  // Row-major C[M,N] = alpha op(A) op(B) + beta C, A/B bf16, C bf16 or fp32; op = transpose
  // when trans_*; lda/ldb/ldc are row strides in elements.
  void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const bf16* A,
            index_t lda, const bf16* B, index_t ldb, float beta, void* C, GemmOut c_type, index_t ldc);

  void linear_forward(bf16* y, const bf16* x, const bf16* w, const bf16* bias, index_t rows, index_t in,
                      index_t out);
  // Any of dx, dw, db may be null. accumulate_dx: dx += instead of =.
  void linear_backward(bf16* dx, bool accumulate_dx, float* dw, float* db, const bf16* dy, const bf16* x,
                       const bf16* w, index_t rows, index_t in, index_t out);

 private:
  cudaStream_t stream_;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  bool force_cublas_ = false;
  // gemm with an optional bias over the columns of a bf16 C (linear_forward).
  void gemm_impl(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const bf16* A,
                 index_t lda, const bf16* B, index_t ldb, float beta, void* C, GemmOut c_type, index_t ldc,
                 const bf16* bias);
  struct Algo;  // cached cuBLASLt descriptors and heuristic result for one shape
  std::map<std::tuple<bool, bool, index_t, index_t, index_t, index_t, index_t, index_t, int, bool>, Algo*>
      cache_;
};

}  // namespace strata::kernels::cuda
