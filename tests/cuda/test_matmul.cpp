// cuBLASLt / cuBLAS GEMMs and the linear layer (kernels/cuda/matmul.hpp) against a double
// reference on the same bf16-rounded inputs.
//
// Tolerances: the inputs are exact bf16 values, so the only errors are the fp32 accumulation
// (K <= 200 products of N(0,1) values: ~K 2^-24 |sum of |terms|| < 1e-4) and the rounding of
// the output. fp32 outputs: rtol 1e-5, atol 1e-3. bf16 outputs: one rounding, relative 2^-9 =
// 0.002 (twice that where a bias is added after the GEMM's rounding on the cuBLAS path):
// rtol 8e-3, atol 2e-3.
#include <random>
#include <vector>

#include "cuda_test_util.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cuda/matmul.hpp"

using namespace strata::test;
using strata::kernels::cuda::Blas;
using strata::kernels::cuda::GemmOut;
using strata::kernels::cuda::index_t;

namespace {

std::vector<float> random_bf16_values(std::size_t n, unsigned seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = bf16_round(nd(rng));
  return x;
}

// Row-major C = alpha op(A) op(B) + beta C in double.
std::vector<float> gemm_ref(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha,
                            const std::vector<float>& A, index_t lda, const std::vector<float>& B,
                            index_t ldb, float beta, const std::vector<float>& C, index_t ldc) {
  std::vector<float> out = C;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double acc = 0;
      for (index_t p = 0; p < K; ++p)
        acc += double(ta ? A[p * lda + i] : A[i * lda + p]) * double(tb ? B[j * ldb + p] : B[p * ldb + j]);
      out[i * ldc + j] = float(alpha * acc + double(beta) * C[i * ldc + j]);
    }
  return out;
}

struct GemmCase {
  bool ta, tb;
  index_t M, N, K;
};

// Runs one GEMM on the device with C of type `out` and returns C as float.
std::vector<float> run_gemm(Blas& blas, const GemmCase& g, float alpha, const std::vector<float>& A,
                            index_t lda, const std::vector<float>& B, index_t ldb, float beta,
                            const std::vector<float>& C, index_t ldc, GemmOut out) {
  DeviceBuffer<bf16> dA(to_bf16(A)), dB(to_bf16(B));
  if (out == GemmOut::bf16) {
    DeviceBuffer<bf16> dC(to_bf16(C));
    blas.gemm(g.ta, g.tb, g.M, g.N, g.K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), out, ldc);
    return to_float(dC.download());
  }
  DeviceBuffer<float> dC(C);
  blas.gemm(g.ta, g.tb, g.M, g.N, g.K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), out, ldc);
  return dC.download();
}

}  // namespace

class CudaMatmul : public CudaTest {};

TEST_F(CudaMatmul, GemmAllTransposesOddShapesBothOutputsMatchDoubleReference) {
  Blas blas(nullptr);
  const std::vector<GemmCase> cases = {{false, false, 37, 53, 71},  {false, true, 37, 53, 71},
                                       {true, false, 37, 53, 71},   {true, true, 37, 53, 71},
                                       {false, true, 64, 128, 192}, {true, false, 1, 9, 200}};
  for (const auto& g : cases) {
    for (GemmOut out : {GemmOut::bf16, GemmOut::f32}) {
      for (int variant = 0; variant < 4; ++variant) {
        const float beta = variant % 2 ? 1.0f : 0.0f;
        // aligned row strides (multiples of 8: the cuBLASLt path) or odd ones (cublasGemmEx)
        const bool aligned = variant < 2;
        auto ld = [&](index_t cols) { return aligned ? (cols + 7) / 8 * 8 + 8 : cols + 3; };
        SCOPED_TRACE(::testing::Message()
                     << "ta " << g.ta << " tb " << g.tb << " M " << g.M << " N " << g.N << " K " << g.K
                     << " out " << (out == GemmOut::bf16 ? "bf16" : "f32") << " beta " << beta
                     << (aligned ? " aligned" : " odd") << " strides");
        const index_t lda = ld(g.ta ? g.M : g.K), ldb = ld(g.tb ? g.K : g.N), ldc = ld(g.N);
        const auto A = random_bf16_values(std::size_t((g.ta ? g.K : g.M) * lda), 1);
        const auto B = random_bf16_values(std::size_t((g.tb ? g.N : g.K) * ldb), 2);
        const auto C = random_bf16_values(std::size_t(g.M * ldc), 3);
        const float alpha = 0.75f;
        const auto want = gemm_ref(g.ta, g.tb, g.M, g.N, g.K, alpha, A, lda, B, ldb, beta, C, ldc);
        const auto got = run_gemm(blas, g, alpha, A, lda, B, ldb, beta, C, ldc, out);
        if (out == GemmOut::bf16)
          EXPECT_TRUE(all_close(got, want, 8e-3, 2e-3));
        else
          EXPECT_TRUE(all_close(got, want, 1e-5, 1e-3));
      }
    }
  }
}

TEST_F(CudaMatmul, CublasFallbackEqualsCublasLt) {
  Blas blas(nullptr);
  const GemmCase g{false, true, 96, 160, 128};
  const auto A = random_bf16_values(std::size_t(g.M * g.K), 4),
             B = random_bf16_values(std::size_t(g.N * g.K), 5);
  const auto C = random_bf16_values(std::size_t(g.M * g.N), 6);
  const auto want = gemm_ref(g.ta, g.tb, g.M, g.N, g.K, 1.0f, A, g.K, B, g.K, 1.0f, C, g.N);
  const auto lt = run_gemm(blas, g, 1.0f, A, g.K, B, g.K, 1.0f, C, g.N, GemmOut::f32);
  blas.set_force_cublas(true);
  const auto cb = run_gemm(blas, g, 1.0f, A, g.K, B, g.K, 1.0f, C, g.N, GemmOut::f32);
  EXPECT_TRUE(all_close(lt, want, 1e-5, 1e-3));
  EXPECT_TRUE(all_close(cb, want, 1e-5, 1e-3));
  // both paths accumulate the same exact products in fp32; only the summation order differs
  EXPECT_TRUE(all_close(cb, lt, 1e-5, 1e-3));
}

TEST_F(CudaMatmul, RepeatedBetaOneAccumulatesInFp32) {
  // dW-style accumulation: C (fp32) += A B three times equals 3 A B, without bf16 rounding.
  Blas blas(nullptr);
  const GemmCase g{true, false, 40, 24, 56};
  const auto A = random_bf16_values(std::size_t(g.K * g.M), 7),
             B = random_bf16_values(std::size_t(g.K * g.N), 8);
  const std::vector<float> zero(std::size_t(g.M * g.N), 0.0f);
  auto want = gemm_ref(g.ta, g.tb, g.M, g.N, g.K, 3.0f, A, g.M, B, g.N, 0.0f, zero, g.N);
  DeviceBuffer<bf16> dA(to_bf16(A)), dB(to_bf16(B));
  DeviceBuffer<float> dC(zero);
  for (int i = 0; i < 3; ++i)
    blas.gemm(g.ta, g.tb, g.M, g.N, g.K, 1.0f, dA.get(), g.M, dB.get(), g.N, 1.0f, dC.get(), GemmOut::f32,
              g.N);
  EXPECT_TRUE(all_close(dC.download(), want, 1e-5, 1e-3));
}

TEST_F(CudaMatmul, LinearForwardBackwardMatchCpuLinearInDouble) {
  const index_t rows = 50, in = 72, out = 40;
  const auto x = random_bf16_values(std::size_t(rows * in), 10),
             w = random_bf16_values(std::size_t(out * in), 11, 0.2f);
  const auto bias = random_bf16_values(std::size_t(out), 12),
             dy = random_bf16_values(std::size_t(rows * out), 13);
  const auto dx0 = random_bf16_values(std::size_t(rows * in), 14);
  const auto dw0 = random_bf16_values(std::size_t(out * in), 15),
             db0 = random_bf16_values(std::size_t(out), 16);
  auto dbl = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  auto flt = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };

  for (bool force_cublas : {false, true}) {
    SCOPED_TRACE(force_cublas ? "cublasGemmEx path" : "cuBLASLt path");
    Blas blas(nullptr);
    blas.set_force_cublas(force_cublas);
    DeviceBuffer<bf16> dX(to_bf16(x)), dW(to_bf16(w)), dB(to_bf16(bias)), dY(std::size_t(rows * out));
    DeviceBuffer<bf16> dDy(to_bf16(dy));
    for (bool with_bias : {true, false}) {
      std::vector<double> y_ref(std::size_t(rows * out));
      strata::kernels::cpu::linear_forward<double>(y_ref.data(), dbl(x).data(), dbl(w).data(),
                                                   with_bias ? dbl(bias).data() : nullptr, rows, in, out);
      blas.linear_forward(dY.get(), dX.get(), dW.get(), with_bias ? dB.get() : nullptr, rows, in, out);
      EXPECT_TRUE(all_close(to_float(dY.download()), flt(y_ref), 8e-3, 4e-3)) << "bias " << with_bias;
    }
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(accumulate ? "dx +=" : "dx =");
      std::vector<double> dx_ref = accumulate ? dbl(dx0) : std::vector<double>(std::size_t(rows * in), 0.0);
      std::vector<double> dw_ref = dbl(dw0), db_ref = dbl(db0);
      strata::kernels::cpu::linear_backward<double>(dx_ref.data(), dw_ref.data(), db_ref.data(),
                                                    dbl(dy).data(), dbl(x).data(), dbl(w).data(), rows, in,
                                                    out);
      DeviceBuffer<bf16> dDx(to_bf16(dx0));
      DeviceBuffer<float> dDw(dw0), dDb(db0);
      blas.linear_backward(dDx.get(), accumulate, dDw.get(), dDb.get(), dDy.get(), dX.get(), dW.get(), rows,
                           in, out);
      EXPECT_TRUE(all_close(to_float(dDx.download()), flt(dx_ref), 8e-3, 2e-3));
      EXPECT_TRUE(all_close(dDw.download(), flt(dw_ref), 1e-5, 1e-3));
      EXPECT_TRUE(all_close(dDb.download(), flt(db_ref), 1e-5, 1e-3));
    }
  }
}

TEST_F(CudaMatmul, MovedBlasStillWorks) {
  Blas first(nullptr);
  Blas blas(std::move(first));
  const GemmCase g{false, false, 16, 16, 16};
  const auto A = random_bf16_values(256, 20), B = random_bf16_values(256, 21);
  const std::vector<float> zero(256, 0.0f);
  const auto want = gemm_ref(false, false, 16, 16, 16, 1.0f, A, 16, B, 16, 0.0f, zero, 16);
  EXPECT_TRUE(
      all_close(run_gemm(blas, g, 1.0f, A, 16, B, 16, 0.0f, zero, 16, GemmOut::f32), want, 1e-5, 1e-3));
}
