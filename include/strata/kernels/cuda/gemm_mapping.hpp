// The row-major -> column-major mapping of Blas::gemm (matmul.cu), as plain C++ so the host
// tests (tests/cuda/test_kernels_host.cpp) check it against a naive column-major GEMM
// without a GPU. No CUDA header needed.
//
// cuBLAS sees a row-major [R, C] matrix with row stride ld as the column-major [C, R]
// matrix (its transpose) with leading dimension ld. So the row-major
//   C[M,N] = op(A)[M,K] op(B)[K,N]
// is the column-major C^T[N,M] = op(B)^T op(A)^T: cuBLAS's "A" is our B (transposed iff
// trans_b), its "B" is our A (transposed iff trans_a), m = N, n = M, k = K.
#pragma once
#include <cstdint>

namespace strata::kernels::cuda {

struct ColMajorGemm {
  // cublasGemmEx(transa, transb, m, n, k, alpha, A = our B, lda, B = our A, ldb, beta, C, ldc)
  bool trans_a, trans_b;  // op of cuBLAS's A (= our B) and B (= our A)
  std::int64_t m, n, k;
  std::int64_t lda, ldb, ldc;  // = our ldb, lda, ldc
  // cuBLASLt matrix layouts (rows, cols of the STORED column-major matrices, before op):
  // A is [m,k] (N) or [k,m] (T); B is [k,n] (N) or [n,k] (T); C/D is [m,n].
  std::int64_t a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
};

inline ColMajorGemm col_major_gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K,
                                   std::int64_t lda, std::int64_t ldb, std::int64_t ldc) {
  ColMajorGemm g{};
  g.trans_a = trans_b;
  g.trans_b = trans_a;
  g.m = N;
  g.n = M;
  g.k = K;
  g.lda = ldb;
  g.ldb = lda;
  g.ldc = ldc;
  g.a_rows = g.trans_a ? g.k : g.m;
  g.a_cols = g.trans_a ? g.m : g.k;
  g.b_rows = g.trans_b ? g.n : g.k;
  g.b_cols = g.trans_b ? g.k : g.n;
  g.c_rows = g.m;
  g.c_cols = g.n;
  return g;
}

}  // namespace strata::kernels::cuda
