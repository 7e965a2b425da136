// Host-side tests of the CUDA kernels' host code and per-element formulas: they need no
// GPU and run everywhere (these fixtures do NOT derive from CudaTest).
//   - rope_table (host function) against the angles of the CPU rope kernel;
//   - pointwise.hpp (the formulas the kernels call) against the CPU reference kernels;
//   - gemm_mapping.hpp (Blas::gemm's row-major -> column-major arguments and cuBLASLt
//     layouts) through a naive column-major GEMM against the CPU row-major GEMM.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "kernel_ref_util.hpp"
#include "strata/core/error.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/rope.hpp"
#include "strata/kernels/cuda/gemm_mapping.hpp"
#include "strata/kernels/cuda/pointwise.hpp"
#include "strata/kernels/cuda/rope.hpp"

namespace strata::test {
namespace {

namespace cpu = kernels::cpu;
namespace cu = kernels::cuda;
namespace pw = kernels::cuda::pointwise;
using kernels::cpu::index_t;

// Rotating the unit pair (1, 0) of every (t, i) with the CPU rope (double) gives
// (cos, sin) of its angle exactly (1 cos - 0 sin), so the table must equal those values
// rounded to float, bit for bit: same expression in double, one rounding.
TEST(CudaHostRopeTable, EqualsCpuRopeAnglesRoundedToFloat) {
  for (const auto& [max_T, HS, theta] :
       {std::tuple<long, long, double>{1, 2, 10000.0}, {300, 8, 10000.0}, {4100, 128, 500000.0}}) {
    const long half = HS / 2;
    std::vector<double> x(static_cast<std::size_t>(max_T * HS), 0.0);
    for (long t = 0; t < max_T; ++t)
      for (long i = 0; i < half; ++i) x[static_cast<std::size_t>(t * HS + i)] = 1.0;
    cpu::rope_forward<double>(x.data(), 1, max_T, 1, HS, theta);
    const std::vector<float> table = cu::rope_table(max_T, HS, theta);
    ASSERT_EQ(table.size(), static_cast<std::size_t>(max_T * HS));
    for (long t = 0; t < max_T; ++t)
      for (long i = 0; i < half; ++i) {
        const std::size_t at = static_cast<std::size_t>(2 * (t * half + i));
        ASSERT_EQ(table[at], static_cast<float>(x[static_cast<std::size_t>(t * HS + i)]))
            << "cos t=" << t << " i=" << i;
        ASSERT_EQ(table[at + 1], static_cast<float>(x[static_cast<std::size_t>(t * HS + half + i)]))
            << "sin t=" << t << " i=" << i;
      }
  }
}

TEST(CudaHostRopeTable, RejectsOddHeadSize) {
  EXPECT_THROW(cu::rope_table(4, 7, 10000.0), strata::Error);
  EXPECT_THROW(cu::rope_table(4, 0, 10000.0), strata::Error);
}

// The fp32 formulas against the double CPU kernels on the same inputs. fp32 tanhf/expf
// are within a few ulp; the formulas have no cancellation worse than 1 + tanh u for
// x down to -5 (relative error ~1e-7 / (1 + tanh u) ~ 1e-4 of y there, ~1e-10 absolute),
// so rtol 1e-5 with atol 1e-6 holds with margin and any wrong term (O(1e-2)) fails.
TEST(CudaHostPointwise, GeluAndGradMatchCpuReference) {
  std::vector<double> x(401);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = -5.0 + 0.025 * double(i);
  std::vector<double> y(x.size()), dx(x.size(), 0.0), ones(x.size(), 1.0);
  cpu::gelu_forward<double>(y.data(), x.data(), index_t(x.size()));
  cpu::gelu_backward<double>(dx.data(), ones.data(), x.data(), index_t(x.size()));
  std::vector<float> gy(x.size()), gdx(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    gy[i] = pw::gelu(float(x[i]));
    gdx[i] = pw::gelu_grad(float(x[i]));
  }
  EXPECT_TRUE(all_close(gy, to_float(y), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(gdx, to_float(dx), 1e-5, 1e-6));
}

TEST(CudaHostPointwise, SwigluAndGradsMatchCpuReference) {
  const std::vector<float> g = randn_bf16(500, 11, 3.0), u = randn_bf16(500, 12), d = randn_bf16(500, 13);
  const auto gd = to_double(g), ud = to_double(u), dd = to_double(d);
  std::vector<double> y(g.size()), dg(g.size(), 0.0), du(g.size(), 0.0);
  cpu::swiglu_forward<double>(y.data(), gd.data(), ud.data(), index_t(g.size()));
  cpu::swiglu_backward<double>(dg.data(), du.data(), dd.data(), gd.data(), ud.data(), index_t(g.size()));
  std::vector<float> gy(g.size()), gdg(g.size()), gdu(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    gy[i] = pw::swiglu(g[i], u[i]);
    gdg[i] = pw::swiglu_dgate(d[i], g[i], u[i]);
    gdu[i] = pw::swiglu_dup(d[i], g[i]);
  }
  EXPECT_TRUE(all_close(gy, to_float(y), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(gdg, to_float(dg), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(gdu, to_float(du), 1e-5, 1e-6));
}

// Online (max, sum): folding values one at a time into per-chunk states, then merging the
// chunk states in a tree (as the block does, empty states included), gives the row max
// exactly and sum e^{x - max} to fp32 accuracy (~n ulp: rtol 1e-5 for n = 1000).
TEST(CudaHostPointwise, OnlineMaxSumMergeMatchesDirectComputation) {
  const std::vector<float> x = randn_bf16(1000, 21, 4.0);
  double mx = -INFINITY;
  for (float v : x) mx = std::max(mx, double(v));
  double s = 0;
  for (float v : x) s += std::exp(double(v) - mx);
  std::vector<pw::MaxSum> parts(64, pw::maxsum_empty());  // 64 "threads", some get nothing
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t lane = (i * 7) % 61;  // lanes 61..63 stay empty
    parts[lane] = pw::maxsum_add(parts[lane], x[i]);
  }
  for (std::size_t w = parts.size() / 2; w > 0; w /= 2)
    for (std::size_t i = 0; i < w; ++i) parts[i] = pw::maxsum_merge(parts[i], parts[i + w]);
  EXPECT_EQ(parts[0].m, float(mx));
  EXPECT_NEAR(parts[0].s, s, 1e-5 * s);
  // Empty states are neutral on either side, and two empties stay empty (no NaN).
  const pw::MaxSum e = pw::maxsum_empty(), a{1.5f, 3.0f};
  EXPECT_EQ(pw::maxsum_merge(e, a).m, 1.5f);
  EXPECT_EQ(pw::maxsum_merge(a, e).s, 3.0f);
  EXPECT_EQ(pw::maxsum_merge(e, e).s, 0.0f);
  EXPECT_EQ(pw::maxsum_add(e, -2.0f).s, 1.0f);
}

// One AdamW element in fp32 against the CPU kernel in double at steps 1 and 10, with the
// same (float-valued) hyper-parameters: the update is a few fp32 operations, so the
// parameter agrees to ~1e-7 absolute (values O(1)), v to a few ulp (rtol 1e-6) and m,
// which can cancel (b1 m + (1 - b1) g), to a few ulp of its terms (atol 1e-7).
TEST(CudaHostPointwise, AdamWElementMatchesCpuReference) {
  const float lr = 3e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
  const std::vector<float> p0 = randn_f32(64, 31), g = randn_f32(64, 32), m0 = randn_f32(64, 33, 0.1);
  std::vector<float> v0 = randn_f32(64, 34, 0.1);
  for (float& v : v0) v = v * v;
  for (long step : {1L, 10L}) {
    std::vector<double> p = to_double(p0), m = to_double(m0), v = to_double(v0);
    const auto gd = to_double(g);
    cpu::adamw_update<double>(
        p.data(), gd.data(), m.data(), v.data(), 64,
        {double(lr), double(b1), double(b2), double(eps), double(wd), double(gs), step});
    pw::AdamWConsts k{lr,
                      b1,
                      b2,
                      float(1.0 - double(b1)),
                      float(1.0 - double(b2)),
                      eps,
                      gs,
                      float(1.0 / (1.0 - std::pow(double(b1), double(step)))),
                      float(1.0 / (1.0 - std::pow(double(b2), double(step))))};
    std::vector<float> fp = p0, fm = m0, fv = v0;
    for (std::size_t i = 0; i < 64; ++i) pw::adamw_element(fp[i], fm[i], fv[i], g[i], k, lr * wd);
    EXPECT_TRUE(all_close(fp, to_float(p), 1e-6, 1e-6)) << "step " << step;
    EXPECT_TRUE(all_close(fm, to_float(m), 1e-6, 1e-7)) << "step " << step;
    EXPECT_TRUE(all_close(fv, to_float(v), 1e-6, 1e-9)) << "step " << step;
  }
}

// Column-major BLAS semantics, as cuBLAS/cuBLASLt apply them to the mapped arguments:
//   C(i,j) = alpha sum_p opA(i,p) opB(p,j) + beta C(i,j),  i < m, j < n,
// X(r,c) stored at X[r + c ld]. Every element read must lie inside the stored layout
// ([rows, cols] with rows <= ld), so a wrong layout fails here as well as a wrong result.
std::vector<double> col_major_gemm_ref(const cu::ColMajorGemm& g, double alpha, const std::vector<double>& A,
                                       const std::vector<double>& B, double beta, std::vector<double> C,
                                       bool& in_layout) {
  in_layout = g.a_rows <= g.lda && g.b_rows <= g.ldb && g.c_rows <= g.ldc;
  auto at = [&](const std::vector<double>& X, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                std::int64_t r, std::int64_t c) {
    if (r < 0 || r >= rows || c < 0 || c >= cols || std::size_t(r + c * ld) >= X.size()) {
      in_layout = false;
      return 0.0;
    }
    return X[std::size_t(r + c * ld)];
  };
  for (std::int64_t j = 0; j < g.n; ++j)
    for (std::int64_t i = 0; i < g.m; ++i) {
      double acc = 0;
      for (std::int64_t p = 0; p < g.k; ++p) {
        const double a =
            g.trans_a ? at(A, g.a_rows, g.a_cols, g.lda, p, i) : at(A, g.a_rows, g.a_cols, g.lda, i, p);
        const double b =
            g.trans_b ? at(B, g.b_rows, g.b_cols, g.ldb, j, p) : at(B, g.b_rows, g.b_cols, g.ldb, p, j);
        acc += a * b;
      }
      double& c = C[std::size_t(i + j * g.ldc)];
      c = alpha * acc + beta * c;
    }
  return C;
}

// Blas::gemm hands cuBLAS "A" = our B and "B" = our A with the mapped arguments; the
// column-major result read back row-major must equal the row-major GEMM, for every
// transpose combination, padded row strides and M != N != K.
TEST(CudaHostGemmMapping, ColumnMajorArgumentsReproduceRowMajorGemm) {
  const index_t M = 5, N = 7, K = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const index_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
      const auto A = to_double(randn_bf16(std::size_t((ta ? K : M) * lda), 41));
      const auto B = to_double(randn_bf16(std::size_t((tb ? N : K) * ldb), 42));
      const auto C0 = to_double(randn_bf16(std::size_t(M * ldc), 43));
      std::vector<double> want = C0;
      cpu::gemm<double>(ta, tb, M, N, K, 0.5, A.data(), lda, B.data(), ldb, 2.0, want.data(), ldc);
      const cu::ColMajorGemm g = cu::col_major_gemm(ta, tb, M, N, K, lda, ldb, ldc);
      bool in_layout = true;
      const std::vector<double> got = col_major_gemm_ref(g, 0.5, B, A, 2.0, C0, in_layout);
      EXPECT_TRUE(in_layout) << "ta " << ta << " tb " << tb;
      EXPECT_EQ(g.c_rows, N);
      EXPECT_EQ(g.c_cols, M);
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-12) << "ta " << ta << " tb " << tb << " at " << i;
    }
}

}  // namespace
}  // namespace strata::test
