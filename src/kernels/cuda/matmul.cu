// GEMMs on tensor cores through cuBLASLt, with cuBLAS as the fallback (interface and math:
// include/strata/kernels/cuda/matmul.hpp).
//
// Row-major to column-major: cuBLAS sees a row-major [R, C] matrix with row stride ld as the
// column-major [C, R] matrix (its transpose) with leading dimension ld. So the row-major
//   C[M,N] = op(A)[M,K] op(B)[K,N]
// is issued as the column-major C^T[N,M] = op(B)^T op(A)^T: cuBLAS's "A" is our B (transposed
// iff trans_b), its "B" is our A (transposed iff trans_a), m = N, n = M, k = K.
//
// Precision: A, B bf16; products accumulate in fp32 (CUBLAS_COMPUTE_32F) with fp32 alpha/beta;
// C/D bf16 (activations, dX) or fp32 (dW: beta = 1 sums micro-batches without bf16 rounding).
//
// Algorithm choice: the first call of a shape asks cuBLASLt's heuristic for one algorithm
// under the workspace size and caches it with its descriptors (Algo); later calls reuse it.
// Shapes for which the heuristic finds nothing, pointers or row strides not 16-byte aligned
// (cuBLASLt's heuristic assumes aligned operands) and set_force_cublas(true) go to cublasGemmEx
// (CUBLAS_GEMM_DEFAULT), which is always available for these types.
//
// Linear layer: forward Y = X W^T (+ b) with b added by the cuBLASLt BIAS epilogue (in fp32,
// before the rounding of Y to bf16) or, on the cuBLAS path, by add_bias_bf16 afterwards;
// backward dX = / += dY W, dW += dY^T X (fp32), db += column sums of dY (bias_grad_bf16).
#include "strata/kernels/cuda/elementwise.hpp"
#include "strata/kernels/cuda/gemm_mapping.hpp"
#include "strata/kernels/cuda/matmul.hpp"

#include <cstdint>
#include <initializer_list>
#include <utility>

namespace strata::kernels::cuda {

namespace {

const char* cublas_status_name(cublasStatus_t st) { return cublasGetStatusString(st); }

// Throws naming the call and the GEMM shape.
void check_blas(cublasStatus_t st, const char* what, bool ta, bool tb, index_t M, index_t N, index_t K) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw make_error("cuBLAS error in ", what, " for the row-major GEMM C[", M, ",", N, "] = op",
                   ta ? "T" : "N", "(A) op", tb ? "T" : "N", "(B) with K = ", K, ": ", cublas_status_name(st),
                   " (", int(st), ")");
}

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

}  // namespace

// Descriptors of one cuBLASLt GEMM shape and the algorithm the heuristic chose for it
// (has_algo false: the heuristic found none; the shape always goes to cublasGemmEx).
struct Blas::Algo {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
  ~Algo() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Blas::Blas(cudaStream_t stream, std::size_t workspace_bytes)
    : stream_(stream), workspace_bytes_(workspace_bytes) {
  check_blas(cublasLtCreate(&lt_), "cublasLtCreate", false, false, 0, 0, 0);
  check_blas(cublasCreate(&blas_), "cublasCreate", false, false, 0, 0, 0);
  check_blas(cublasSetStream(blas_, stream_), "cublasSetStream", false, false, 0, 0, 0);
  if (workspace_bytes_ > 0) STRATA_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
  // cublasGemmEx uses the same workspace (no allocation of its own inside the step).
  check_blas(cublasSetWorkspace(blas_, workspace_, workspace_bytes_), "cublasSetWorkspace", false, false, 0,
             0, 0);
}

Blas::~Blas() {
  for (auto& [key, algo] : cache_) delete algo;
  if (workspace_) cudaFree(workspace_);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

Blas::Blas(Blas&& other) noexcept
    : stream_(other.stream_),
      lt_(std::exchange(other.lt_, nullptr)),
      blas_(std::exchange(other.blas_, nullptr)),
      workspace_(std::exchange(other.workspace_, nullptr)),
      workspace_bytes_(std::exchange(other.workspace_bytes_, 0)),
      force_cublas_(other.force_cublas_),
      cache_(std::exchange(other.cache_, {})) {}

void Blas::gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const bf16* A,
                index_t lda, const bf16* B, index_t ldb, float beta, void* C, GemmOut c_type, index_t ldc) {
  gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, c_type, ldc, nullptr);
}

void Blas::gemm_impl(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const bf16* A,
                     index_t lda, const bf16* B, index_t ldb, float beta, void* C, GemmOut c_type,
                     index_t ldc, const bf16* bias) {
  if (M == 0 || N == 0) return;
  STRATA_CHECK(M > 0 && N > 0 && K > 0, "gemm: invalid shape M = ", M, ", N = ", N, ", K = ", K);
  // Row-major strides: op(A) is [M,K], so A is stored [M,K] (lda >= K) or [K,M] (lda >= M).
  STRATA_CHECK(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
               "gemm: row strides lda = ", lda, ", ldb = ", ldb, ", ldc = ", ldc, " too small for M = ", M,
               ", N = ", N, ", K = ", K, " (trans_a ", trans_a, ", trans_b ", trans_b, ")");
  STRATA_CHECK(M < (index_t(1) << 31) && N < (index_t(1) << 31) && K < (index_t(1) << 31) &&
                   lda < (index_t(1) << 31) && ldb < (index_t(1) << 31) && ldc < (index_t(1) << 31),
               "gemm: dimensions beyond 32-bit integers (M = ", M, ", N = ", N, ", K = ", K, ")");
  const cudaDataType_t ctype = c_type == GemmOut::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  // Column-major problem: m = N, n = M, k = K; cuBLAS A = our B, cuBLAS B = our A
  // (gemm_mapping.hpp, host-tested against a naive column-major GEMM).
  const ColMajorGemm cm = col_major_gemm(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  const cublasOperation_t opa = cm.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = cm.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;

  Algo* algo = nullptr;
  // cuBLASLt only for 16-byte aligned pointers and row strides (every model GEMM); odd
  // strides (tests, odd shapes) take cublasGemmEx, which has no alignment requirement.
  const index_t c_align = c_type == GemmOut::bf16 ? 8 : 4;
  const bool lt_ok = !force_cublas_ && aligned16(A) && aligned16(B) && aligned16(C) &&
                     (!bias || aligned16(bias)) && lda % 8 == 0 && ldb % 8 == 0 && ldc % c_align == 0;
  if (lt_ok) {
    const auto key = std::make_tuple(trans_a, trans_b, M, N, K, lda, ldb, ldc, int(c_type), bias != nullptr);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      auto* fresh = new Algo;
      it = cache_.emplace(key, fresh).first;
      const auto ck = [&](cublasStatus_t st, const char* what) {
        check_blas(st, what, trans_a, trans_b, M, N, K);
      };
      ck(cublasLtMatmulDescCreate(&fresh->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
      ck(cublasLtMatmulDescSetAttribute(fresh->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)),
         "cublasLtMatmulDescSetAttribute(TRANSA)");
      ck(cublasLtMatmulDescSetAttribute(fresh->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)),
         "cublasLtMatmulDescSetAttribute(TRANSB)");
      if (bias) {
        // D = A B + bias, the bias a vector over the rows of the column-major D (our columns).
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        ck(cublasLtMatmulDescSetAttribute(fresh->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
           "cublasLtMatmulDescSetAttribute(EPILOGUE)");
        const cudaDataType_t btype = CUDA_R_16BF;
        ck(cublasLtMatmulDescSetAttribute(fresh->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &btype,
                                          sizeof(btype)),
           "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
        ck(cublasLtMatmulDescSetAttribute(fresh->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
           "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
      }
      // Stored column-major shapes: cuBLAS A is [m,k] (N) or [k,m] (T); cuBLAS B is [k,n] or [n,k].
      ck(cublasLtMatrixLayoutCreate(&fresh->a, CUDA_R_16BF, std::uint64_t(cm.a_rows),
                                    std::uint64_t(cm.a_cols), cm.lda),
         "cublasLtMatrixLayoutCreate(A)");
      ck(cublasLtMatrixLayoutCreate(&fresh->b, CUDA_R_16BF, std::uint64_t(cm.b_rows),
                                    std::uint64_t(cm.b_cols), cm.ldb),
         "cublasLtMatrixLayoutCreate(B)");
      ck(cublasLtMatrixLayoutCreate(&fresh->c, ctype, std::uint64_t(cm.c_rows), std::uint64_t(cm.c_cols),
                                    cm.ldc),
         "cublasLtMatrixLayoutCreate(C)");
      cublasLtMatmulPreference_t pref = nullptr;
      ck(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
      const std::uint64_t ws = workspace_bytes_;
      cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                               &ws, sizeof(ws));
      // The heuristic assumes 256-byte aligned A/B/C/D unless told otherwise (cublasLt.h:
      // MIN_ALIGNMENT_*_BYTES default 256), and the algorithm is cached per shape, not per
      // pointer: MemoryPlan views are only 64-byte aligned and strided views less. Promise
      // only what lt_ok checked (16 bytes), so the cached algorithm fits every later call.
      const std::uint32_t min_align = 16;
      for (const auto attr :
           {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        if (st == CUBLAS_STATUS_SUCCESS)
          st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &min_align, sizeof(min_align));
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(lt_, fresh->op, fresh->a, fresh->b, fresh->c, fresh->c, pref, 1,
                                            &result, &found);
      cublasLtMatmulPreferenceDestroy(pref);
      // CUBLAS_STATUS_NOT_SUPPORTED: no algorithm for this shape; the cuBLAS path takes it.
      if (st != CUBLAS_STATUS_NOT_SUPPORTED) ck(st, "cublasLtMatmulAlgoGetHeuristic");
      fresh->has_algo = st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
      if (fresh->has_algo) fresh->algo = result.algo;
    }
    algo = it->second;
  }

  if (algo && algo->has_algo) {
    if (bias)
      check_blas(
          cublasLtMatmulDescSetAttribute(algo->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
          "cublasLtMatmulDescSetAttribute(BIAS_POINTER)", trans_a, trans_b, M, N, K);
    check_blas(cublasLtMatmul(lt_, algo->op, &alpha, B, algo->a, A, algo->b, &beta, C, algo->c, C, algo->c,
                              &algo->algo, workspace_, workspace_bytes_, stream_),
               "cublasLtMatmul", trans_a, trans_b, M, N, K);
    return;
  }
  check_blas(cublasGemmEx(blas_, opa, opb, int(cm.m), int(cm.n), int(cm.k), &alpha, B, CUDA_R_16BF,
                          int(cm.lda), A, CUDA_R_16BF, int(cm.ldb), &beta, C, ctype, int(cm.ldc),
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx", trans_a, trans_b, M, N, K);
  if (bias) {
    STRATA_CHECK(c_type == GemmOut::bf16 && ldc == N, "gemm: a bias needs a contiguous bf16 output");
    add_bias_bf16(static_cast<bf16*>(C), bias, M, N, stream_);
  }
}

void Blas::linear_forward(bf16* y, const bf16* x, const bf16* w, const bf16* bias, index_t rows, index_t in,
                          index_t out) {
  // Y[rows,out] = X[rows,in] W[out,in]^T (+ b)
  gemm_impl(false, true, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, GemmOut::bf16, out, bias);
}

void Blas::linear_backward(bf16* dx, bool accumulate_dx, float* dw, float* db, const bf16* dy, const bf16* x,
                           const bf16* w, index_t rows, index_t in, index_t out) {
  // dX[rows,in] = (or +=) dY[rows,out] W[out,in]
  if (dx)
    gemm_impl(false, false, rows, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx,
              GemmOut::bf16, in, nullptr);
  // dW[out,in] += dY^T X, K = rows: accumulated in fp32
  if (dw && rows > 0)
    gemm_impl(true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, GemmOut::f32, in, nullptr);
  // db[out] += sum_r dY[r, :]
  if (db && rows > 0) bias_grad_bf16(db, dy, rows, out, stream_);
}

}  // namespace strata::kernels::cuda
