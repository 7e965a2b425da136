// GPU tests of the element-wise, embedding, activation and RoPE kernels against the CPU
// reference kernels (kernels/cpu, in double) on the same bf16-rounded inputs. Skipped
// without a GPU (CudaTest).
// Tolerances: a bf16 output carries a rounding of at most half an ulp, 2^-9 of its value;
// rtol 2^-8 (= 0.0039) allows that plus the fp32 arithmetic before it (~1e-6 relative)
// and the odd value where the fp32 result sits on a rounding tie. Outputs computed on the
// host with the same fp32 operations as the kernel (casts, adds) must match exactly.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "cuda_test_util.hpp"
#include "kernel_ref_util.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/embedding.hpp"
#include "strata/kernels/cpu/rope.hpp"
#include "strata/kernels/cuda/activations.hpp"
#include "strata/kernels/cuda/elementwise.hpp"
#include "strata/kernels/cuda/embedding.hpp"
#include "strata/kernels/cuda/rope.hpp"

namespace strata::test {
namespace {

namespace cpu = kernels::cpu;
namespace cu = kernels::cuda;
using kernels::cuda::index_t;

class CudaElementwise : public CudaTest {};
class CudaEmbedding : public CudaTest {};
class CudaActivations : public CudaTest {};
class CudaRope : public CudaTest {};

// Sizes that are not multiples of a block, of a warp, or of 2 (the paired paths).
const std::vector<index_t> kSizes = {1, 31, 257, 100003};

TEST_F(CudaElementwise, CastsAndFillsAreExact) {
  for (index_t n : kSizes) {
    const std::vector<float> x = randn_f32(std::size_t(n), 1, 10.0);
    DeviceBuffer<float> dx(x);
    DeviceBuffer<bf16> db{std::size_t(n)};
    DeviceBuffer<float> back{std::size_t(n)};
    cu::cast_f32_to_bf16(db.get(), dx.get(), n, nullptr);
    cu::cast_bf16_to_f32(back.get(), db.get(), n, nullptr);
    // Round to nearest even on the host (cuda_bf16.h's host path) is the reference.
    EXPECT_TRUE(all_close(to_float(db.download()), bf16_round(x), 0, 0)) << "n=" << n;
    EXPECT_TRUE(all_close(back.download(), bf16_round(x), 0, 0)) << "n=" << n;
    cu::fill_f32(back.get(), 2.5f, n, nullptr);
    cu::fill_bf16(db.get(), 1.0f / 3.0f, n, nullptr);
    EXPECT_TRUE(all_close(back.download(), std::vector<float>(std::size_t(n), 2.5f), 0, 0));
    EXPECT_TRUE(all_close(to_float(db.download()),
                          std::vector<float>(std::size_t(n), bf16_round(1.0f / 3.0f)), 0, 0));
  }
}

// y = bf16(a + b) with the fp32 sum: the host does the same fp32 add and rounding, so the
// results agree bit for bit; also in place (y aliasing a).
TEST_F(CudaElementwise, AddAndAccumulateMatchHostBitForBit) {
  for (index_t n : kSizes) {
    const auto a = randn_bf16(std::size_t(n), 2), b = randn_bf16(std::size_t(n), 3, 0.01);
    std::vector<float> want(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) want[i] = bf16_round(a[i] + b[i]);
    DeviceBuffer<bf16> da(to_bf16(a)), dbb(to_bf16(b)), dy{std::size_t(n)};
    cu::add_bf16(dy.get(), da.get(), dbb.get(), n, nullptr);
    EXPECT_TRUE(all_close(to_float(dy.download()), want, 0, 0)) << "n=" << n;
    cu::add_bf16(da.get(), da.get(), dbb.get(), n, nullptr);  // in place
    EXPECT_TRUE(all_close(to_float(da.download()), want, 0, 0)) << "in place, n=" << n;

    const auto y0 = randn_f32(std::size_t(n), 4), xf = randn_f32(std::size_t(n), 5);
    std::vector<float> want_f(y0.size()), want_b(y0.size());
    for (std::size_t i = 0; i < y0.size(); ++i) {
      want_f[i] = y0[i] + xf[i];
      want_b[i] = y0[i] + b[i];
    }
    DeviceBuffer<float> yf(y0), yb(y0), dxf(xf);
    cu::accumulate_f32(yf.get(), dxf.get(), n, nullptr);
    cu::accumulate_f32_bf16(yb.get(), dbb.get(), n, nullptr);
    EXPECT_TRUE(all_close(yf.download(), want_f, 0, 0));
    EXPECT_TRUE(all_close(yb.download(), want_b, 0, 0));
  }
}

TEST_F(CudaElementwise, AddBiasMatchesHostBitForBit) {
  for (auto [rows, cols] : {std::pair<index_t, index_t>{1, 1}, {3, 33}, {70000, 5}, {65, 1000}}) {
    const auto y = randn_bf16(std::size_t(rows * cols), 6), bias = randn_bf16(std::size_t(cols), 7);
    std::vector<float> want(y.size());
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c)
        want[std::size_t(r * cols + c)] = bf16_round(y[std::size_t(r * cols + c)] + bias[std::size_t(c)]);
    DeviceBuffer<bf16> dy(to_bf16(y)), dbias(to_bf16(bias));
    cu::add_bias_bf16(dy.get(), dbias.get(), rows, cols, nullptr);
    EXPECT_TRUE(all_close(to_float(dy.download()), want, 0, 0)) << rows << "x" << cols;
  }
}

// db[c] += sum_r dy[r, c] in fp32 (per-thread sums, a shared-memory sum, atomics between
// blocks) against a double sum: the fp32 error is at most ~rows * 2^-24 sum_r |dy| and
// typically sqrt(rows) times less; rtol 1e-5 plus atol 1e-5 sqrt(rows) holds for rows up to
// 3000 of unit values with margin, while a dropped row (an error ~1) fails.
TEST_F(CudaElementwise, BiasGradMatchesDoubleSum) {
  for (auto [rows, cols] : {std::pair<index_t, index_t>{1, 1}, {7, 33}, {3000, 45}, {300, 1030}}) {
    const auto dyb = randn_bf16(std::size_t(rows * cols), 8), dyf = randn_f32(std::size_t(rows * cols), 9);
    const auto db0 = randn_f32(std::size_t(cols), 10);
    std::vector<double> want_b = to_double(db0), want_f = to_double(db0);
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) {
        want_b[std::size_t(c)] += dyb[std::size_t(r * cols + c)];
        want_f[std::size_t(c)] += dyf[std::size_t(r * cols + c)];
      }
    DeviceBuffer<bf16> d_dyb(to_bf16(dyb));
    DeviceBuffer<float> d_dyf(dyf), dbb(db0), dbf(db0);
    cu::bias_grad_bf16(dbb.get(), d_dyb.get(), rows, cols, nullptr);
    cu::bias_grad_f32(dbf.get(), d_dyf.get(), rows, cols, nullptr);
    const double atol = 1e-5 * std::sqrt(double(rows));
    EXPECT_TRUE(all_close(dbb.download(), to_float(want_b), 1e-5, atol)) << rows << "x" << cols;
    EXPECT_TRUE(all_close(dbf.download(), to_float(want_f), 1e-5, atol)) << rows << "x" << cols;
  }
}

// out += sum x^2: fp32 partial sums of positive terms, relative error ~log2(n) 2^-24 for
// the tree part plus n_per_thread 2^-24: rtol 1e-5 for n up to 10^6.
TEST_F(CudaElementwise, SumSquaresMatchesDoubleSum) {
  for (index_t n : {index_t(1), index_t(1000), index_t(1000003)}) {
    const auto x = randn_f32(std::size_t(n), 11);
    double want = 0.75;  // the initial value of out: the kernel accumulates
    for (float v : x) want += double(v) * v;
    DeviceBuffer<float> dx(x), out(std::vector<float>{0.75f});
    cu::sum_squares_f32(out.get(), dx.get(), n, nullptr);
    EXPECT_NEAR(out.download()[0], want, 1e-5 * want) << "n=" << n;
  }
}

// Vocab-parallel slice [vocab_start, vocab_start + V_local): tokens below, inside and
// above it; the forward copies rows exactly (zeros outside), the backward adds fp32 rows
// with atomics (a handful of additions per element: rtol 1e-6).
TEST_F(CudaEmbedding, TokenForwardBackwardMatchCpuOnSlice) {
  const index_t N = 300, C = 77, vocab_start = 50, V_local = 40;
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(N));
  for (index_t n = 0; n < N; ++n)
    tokens[std::size_t(n)] = std::int32_t((n * 37) % 130);  // 0..129: all three cases
  const auto wte = randn_bf16(std::size_t(V_local * C), 12);
  const auto dout = randn_f32(std::size_t(N * C), 13);
  const auto dwte0 = randn_f32(std::size_t(V_local * C), 14);
  std::vector<double> out(std::size_t(N * C)), dwte = to_double(dwte0);
  const auto wte_d = to_double(wte), dout_d = to_double(dout);
  cpu::embedding_forward<double>(out.data(), tokens.data(), wte_d.data(), N, C, vocab_start, V_local);
  cpu::embedding_backward<double>(dwte.data(), dout_d.data(), tokens.data(), N, C, vocab_start, V_local);

  DeviceBuffer<std::int32_t> dtok(tokens);
  DeviceBuffer<bf16> dwte_b(to_bf16(wte)), dout_b(std::size_t(N * C));
  DeviceBuffer<float> ddout(dout), ddwte(dwte0);
  // Pre-fill the output with garbage: the forward assigns (zeros for foreign tokens).
  cu::fill_bf16(dout_b.get(), 7.0f, N * C, nullptr);
  cu::embedding_forward(dout_b.get(), dtok.get(), dwte_b.get(), N, C, vocab_start, V_local, nullptr);
  cu::embedding_backward(ddwte.get(), ddout.get(), dtok.get(), N, C, vocab_start, V_local, nullptr);
  EXPECT_TRUE(all_close(to_float(dout_b.download()), to_float(out), 0, 0));
  EXPECT_TRUE(all_close(ddwte.download(), to_float(dwte), 1e-6, 1e-6));
}

TEST_F(CudaEmbedding, PositionForwardBackwardMatchCpu) {
  const index_t B = 3, T = 17, C = 65;
  const auto out0 = randn_bf16(std::size_t(B * T * C), 15), wpe = randn_bf16(std::size_t(T * C), 16);
  const auto dout = randn_f32(std::size_t(B * T * C), 17), dwpe0 = randn_f32(std::size_t(T * C), 18);
  std::vector<float> want(out0.size());
  for (index_t bt = 0; bt < B * T; ++bt)
    for (index_t c = 0; c < C; ++c)
      want[std::size_t(bt * C + c)] =
          bf16_round(out0[std::size_t(bt * C + c)] + wpe[std::size_t((bt % T) * C + c)]);
  std::vector<double> dwpe = to_double(dwpe0);
  const auto dout_d = to_double(dout);
  cpu::position_embedding_backward<double>(dwpe.data(), dout_d.data(), B, T, C);

  DeviceBuffer<bf16> dout_b(to_bf16(out0)), dwpe_b(to_bf16(wpe));
  DeviceBuffer<float> ddout(dout), ddwpe(dwpe0);
  cu::position_embedding_forward(dout_b.get(), dwpe_b.get(), B, T, C, nullptr);
  cu::position_embedding_backward(ddwpe.get(), ddout.get(), B, T, C, nullptr);
  EXPECT_TRUE(all_close(to_float(dout_b.download()), want, 0, 0));
  EXPECT_TRUE(all_close(ddwpe.download(), to_float(dwpe), 1e-6, 1e-6));
}

// GELU and SwiGLU, forward and backward (the GPU backward overwrites; the CPU one
// accumulates into zeros). One bf16 rounding of each output after fp32 math: kBf16Rtol,
// with atol 1e-5 for outputs near 0 where fp32 cancellation (1 + tanh u) dominates.
// Odd n and an offset of one element exercise the scalar (unpaired) paths.
TEST_F(CudaActivations, GeluSwigluMatchCpu) {
  for (index_t n : kSizes) {
    for (index_t off : {index_t(0), index_t(1)}) {
      const auto x = randn_bf16(std::size_t(n + off), 19, 2.0), u = randn_bf16(std::size_t(n + off), 20);
      const auto dy = randn_bf16(std::size_t(n + off), 21);
      const auto xd = to_double(x), ud = to_double(u), dyd = to_double(dy);
      std::vector<double> y(x.size()), dx(x.size(), 0.0), sy(x.size()), dg(x.size(), 0.0), du(x.size(), 0.0);
      cpu::gelu_forward<double>(y.data(), xd.data(), n + off);
      cpu::gelu_backward<double>(dx.data(), dyd.data(), xd.data(), n + off);
      cpu::swiglu_forward<double>(sy.data(), xd.data(), ud.data(), n + off);
      cpu::swiglu_backward<double>(dg.data(), du.data(), dyd.data(), xd.data(), ud.data(), n + off);
      auto tail = [off](const std::vector<double>& v) {
        return to_float(std::vector<double>(v.begin() + off, v.end()));
      };

      DeviceBuffer<bf16> bx(to_bf16(x)), bu(to_bf16(u)), bdy(to_bf16(dy));
      DeviceBuffer<bf16> by(x.size()), bdx(x.size()), bsy(x.size()), bdg(x.size()), bdu(x.size());
      cu::gelu_forward(by.get() + off, bx.get() + off, n, nullptr);
      cu::gelu_backward(bdx.get() + off, bdy.get() + off, bx.get() + off, n, nullptr);
      cu::swiglu_forward(bsy.get() + off, bx.get() + off, bu.get() + off, n, nullptr);
      cu::swiglu_backward(bdg.get() + off, bdu.get() + off, bdy.get() + off, bx.get() + off, bu.get() + off,
                          n, nullptr);
      auto got = [off](const DeviceBuffer<bf16>& b) {
        const auto v = to_float(b.download());
        return std::vector<float>(v.begin() + off, v.end());
      };
      EXPECT_TRUE(all_close(got(by), tail(y), kBf16Rtol, 1e-5)) << "gelu n=" << n << " off=" << off;
      EXPECT_TRUE(all_close(got(bdx), tail(dx), kBf16Rtol, 1e-5)) << "gelu' n=" << n << " off=" << off;
      EXPECT_TRUE(all_close(got(bsy), tail(sy), kBf16Rtol, 1e-5)) << "swiglu n=" << n << " off=" << off;
      EXPECT_TRUE(all_close(got(bdg), tail(dg), kBf16Rtol, 1e-5)) << "swiglu dg n=" << n << " off=" << off;
      EXPECT_TRUE(all_close(got(bdu), tail(du), kBf16Rtol, 1e-5)) << "swiglu du n=" << n << " off=" << off;
    }
  }
}

// RoPE on rows with padding (ld > H HS: the padding must stay untouched), T < max_T of the
// table, odd B and H. Forward against the CPU rope in double, backward against the CPU
// backward: each output is (a c -/+ b s) of bf16 inputs in fp32 with fp32 (cos, sin) from
// the double table, then one bf16 rounding: kBf16Rtol, atol 1e-5 for near-cancellation.
TEST_F(CudaRope, ForwardBackwardMatchCpuWithRowPadding) {
  const index_t B = 3, T = 19, H = 3, HS = 10, ld = H * HS + 6, max_T = 32;
  const double theta = 10000.0;
  const auto x = randn_bf16(std::size_t(B * T * ld), 22);
  // The CPU kernel works on dense [B, T, H, HS]: pack the rows.
  std::vector<double> dense(std::size_t(B * T * H * HS));
  for (index_t r = 0; r < B * T; ++r)
    for (index_t j = 0; j < H * HS; ++j) dense[std::size_t(r * H * HS + j)] = x[std::size_t(r * ld + j)];
  for (bool backward : {false, true}) {
    std::vector<double> ref = dense;
    if (backward) {
      cpu::rope_backward<double>(ref.data(), B, T, H, HS, theta);
    } else {
      cpu::rope_forward<double>(ref.data(), B, T, H, HS, theta);
    }
    std::vector<float> want = x;  // padding columns unchanged
    for (index_t r = 0; r < B * T; ++r)
      for (index_t j = 0; j < H * HS; ++j)
        want[std::size_t(r * ld + j)] = float(ref[std::size_t(r * H * HS + j)]);

    DeviceBuffer<float> table(cu::rope_table(max_T, HS, theta));
    DeviceBuffer<bf16> dx(to_bf16(x));
    if (backward) {
      cu::rope_backward(dx.get(), table.get(), B, T, H, HS, ld, nullptr);
    } else {
      cu::rope_forward(dx.get(), table.get(), B, T, H, HS, ld, nullptr);
    }
    EXPECT_TRUE(all_close(to_float(dx.download()), want, kBf16Rtol, 1e-5))
        << (backward ? "backward" : "forward");
  }
}

}  // namespace
}  // namespace strata::test
