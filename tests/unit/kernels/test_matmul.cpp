#include <cblas.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernel_test_util.hpp"
#include "strata/config.hpp"
#include "strata/kernels/cpu/matmul.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// Plain-loop reference: C = alpha op(A) op(B) + beta C, row-major with leading dimensions.
static void gemm_ref(bool ta, bool tb, index_t M, index_t N, index_t K, double alpha, const double* A,
                     index_t lda, const double* B, index_t ldb, double beta, double* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double s = 0;
      for (index_t k = 0; k < K; ++k)
        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + beta * C[i * ldc + j];
    }
}

TEST(Gemm, AllTransposeCombinationsWithPaddedLeadingDimensionsMatchLoops) {
  const index_t M = 7, N = 5, K = 6, pad = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const index_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      const auto A = randn((ta ? K : M) * lda, 10), B = randn((tb ? N : K) * ldb, 11);
      auto C = randn(M * ldc, 12), Cref = C;
      gemm<double>(ta, tb, M, N, K, 0.7, A.data(), lda, B.data(), ldb, 0.3, C.data(), ldc);
      gemm_ref(ta, tb, M, N, K, 0.7, A.data(), lda, B.data(), ldb, 0.3, Cref.data(), ldc);
      EXPECT_LT(max_abs_diff(C, Cref), 1e-12) << "ta=" << ta << " tb=" << tb;
      // float: K = 6 products of O(1) values, error ~ few ulp of O(3) -> 1e-5 is ample.
      auto Af = cast<float>(A), Bf = cast<float>(B), Cf = cast<float>(randn(M * ldc, 12));
      gemm<float>(ta, tb, M, N, K, 0.7f, Af.data(), lda, Bf.data(), ldb, 0.3f, Cf.data(), ldc);
      EXPECT_LT(max_abs_diff(Cf, Cref), 1e-5) << "ta=" << ta << " tb=" << tb;
    }
}

static std::vector<double> linear_ref(const std::vector<double>& x, const std::vector<double>& w,
                                      const double* b, index_t rows, index_t in, index_t out) {
  std::vector<double> y(rows * out);
  for (index_t n = 0; n < rows; ++n)
    for (index_t o = 0; o < out; ++o) {
      double s = b ? b[o] : 0.0;
      for (index_t i = 0; i < in; ++i) s += x[n * in + i] * w[o * in + i];
      y[n * out + o] = s;
    }
  return y;
}

TEST(Linear, ForwardWithAndWithoutBiasMatchesLoops) {
  const index_t rows = 9, in = 13, out = 70;  // out > 64 columns: two bias column blocks
  const auto x = randn(rows * in, 20), w = randn(out * in, 21), b = randn(out, 22);
  std::vector<double> y(rows * out, 123.0);
  linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
  EXPECT_LT(max_abs_diff(y, linear_ref(x, w, b.data(), rows, in, out)), 1e-12);
  linear_forward<double>(y.data(), x.data(), w.data(), nullptr, rows, in, out);
  EXPECT_LT(max_abs_diff(y, linear_ref(x, w, nullptr, rows, in, out)), 1e-12);
  auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b);
  std::vector<float> yf(rows * out);
  linear_forward(yf.data(), xf.data(), wf.data(), bf.data(), rows, in, out);
  EXPECT_LT(max_abs_diff(yf, linear_ref(x, w, b.data(), rows, in, out)), 1e-4);
}

TEST(Linear, BackwardMatchesFiniteDifferencesAndAccumulatesOrAssignsDx) {
  const index_t rows = 5, in = 6, out = 67;
  auto x = randn(rows * in, 30), w = randn(out * in, 31), b = randn(out, 32);
  const auto r = randn(rows * out, 33);
  auto loss = [&] {
    std::vector<double> y(rows * out);
    linear_forward(y.data(), x.data(), w.data(), b.data(), rows, in, out);
    return dot(r, y);
  };
  const auto dx0 = randn(x.size(), 34), dw0 = randn(w.size(), 35), db0 = randn(b.size(), 36);
  auto dx = dx0, dw = dw0, db = db0;
  for (int rep = 0; rep < 2; ++rep)
    linear_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), rows, in, out);
  expect_matches_fd("dx", x, once(dx, dx0), loss);
  expect_matches_fd("dw", w, once(dw, dw0), loss);
  expect_matches_fd("db", b, once(db, db0), loss);
  // Null gradients are skipped.
  auto dw2 = dw0;
  linear_backward<double>(nullptr, dw2.data(), nullptr, r.data(), x.data(), w.data(), rows, in, out);
  std::vector<double> g(w.size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = dw2[i] - dw0[i];
  EXPECT_LT(max_abs_diff(g, once(dw, dw0)), 1e-12);
  // accumulate_dx = false assigns dX (GEMM beta = 0: the NaN in it is not read); dW and db add.
  std::vector<double> dxa(x.size(), std::nan(""));
  auto dw3 = dw0, db3 = db0;
  linear_backward(dxa.data(), dw3.data(), db3.data(), r.data(), x.data(), w.data(), rows, in, out,
                  /*accumulate_dx=*/false);
  EXPECT_LT(max_abs_diff(dxa, once(dx, dx0)), 1e-12);
  EXPECT_LT(max_abs_diff(dw3, dw2), 1e-12);
  for (std::size_t i = 0; i < db3.size(); ++i) EXPECT_NEAR(db3[i] - db0[i], once(db, db0)[i], 1e-12);
}

TEST(Blas, ReportsItsNameAndThreadCount) {
  ASSERT_NE(blas_name(), nullptr);
  EXPECT_GT(std::strlen(blas_name()), 0u);
  const int before = blas_threads();
  set_blas_threads(1);
  EXPECT_EQ(blas_threads(), 1);
  set_blas_threads(0);  // 0 leaves it unchanged
  EXPECT_EQ(blas_threads(), 1);
  set_blas_threads(before);
}

TEST(Blas, CoreTypeRuleAsksForTheWidestKernelsTheCpuHas) {
  // AVX-512 CPUs that OpenBLAS 0.3.21 maps to AVX2 (AMD Zen 4/5) or SSE3 (unknown Xeons) kernels.
  EXPECT_STREQ(coretype_for("Zen", true, true), "SkylakeX");
  EXPECT_STREQ(coretype_for("Haswell", true, true), "SkylakeX");
  EXPECT_STREQ(coretype_for("Prescott", true, true), "SkylakeX");
  // AVX2-only CPUs given pre-AVX2 kernels.
  EXPECT_STREQ(coretype_for("Prescott", false, true), "Haswell");
  EXPECT_STREQ(coretype_for("Sandybridge", false, true), "Haswell");
  // Already the widest, or nothing better to ask for.
  EXPECT_EQ(coretype_for("SkylakeX", true, true), nullptr);
  EXPECT_EQ(coretype_for("Cooperlake", true, true), nullptr);
  EXPECT_EQ(coretype_for("Zen", false, true), nullptr);
  EXPECT_EQ(coretype_for("Haswell", false, true), nullptr);
  EXPECT_EQ(coretype_for("Prescott", false, false), nullptr);
}

TEST(Blas, TheTestProgramRunsTheWidestKernelsOrTheCoreTypeTheCallerForced) {
  // The test main called ensure_blas_environment(), as strata's main does: OpenBLAS runs the
  // widest kernels the CPU has, unless the caller set OPENBLAS_CORETYPE, whose choice stands
  // (the trainer warns then: train/peak.cpp).
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced == nullptr) {
    EXPECT_EQ(blas_suggested_coretype(), nullptr) << blas_name();
  } else {
    std::string want = forced, got = blas_name();
    for (std::string* s : {&want, &got})
      for (char& c : *s) c = char(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_NE(got.find(want), std::string::npos) << "OPENBLAS_CORETYPE=" << forced << ", " << blas_name();
  }
}

TEST(Blas, TheGemmThreadsAndTheKernelThreadsDoNotSpinOnEachOthersCores) {
  // A build that linked an OpenMP OpenBLAS (STRATA_OPENMP_BLAS) loads it, not the system's
  // default libopenblas.so.0 (the run path CMake wrote): its GEMMs run on the kernels' pool.
  if (strata::build::openmp_blas) {
    EXPECT_EQ(openblas_get_parallel(), 2) << blas_name();
  }
  // With a pthreads OpenBLAS next to OpenMP kernels, the test main's ensure_blas_environment()
  // re-ran the program with both runtimes' idle workers told to sleep soon (a caller's own
  // values stand).
  if (strata::build::have_openmp && openblas_get_parallel() == 1) {
    EXPECT_NE(std::getenv("OMP_WAIT_POLICY"), nullptr);
    const char* timeout = std::getenv("OPENBLAS_THREAD_TIMEOUT");
    ASSERT_NE(timeout, nullptr);
    EXPECT_LE(std::atoi(timeout), 22)
        << "OpenBLAS's workers spin for 2^" << timeout << " cycles after a GEMM";
  }
}
