// GPU tests of LayerNorm and RMSNorm, forward and backward, against the CPU kernels in
// double on the same bf16 inputs. Skipped without a GPU (CudaTest).
// Shapes: C = 1 (one active lane), 37 (< a warp, not a multiple of 8), 773 (the K = 8
// path, not a multiple of 32), 9000 and 12288 (the K = 16 path); N = 1 and more rows than
// the backward's grid (each block then walks several rows): C = 773 runs 128 threads, so
// the grid is 16 blocks per SM, 2112 on a 132-SM H100/H200, fewer than N = 3000.
// Tolerances:
//   y (bf16): one rounding after fp32 statistics: rtol 2^-8; atol 1e-4 for outputs near 0,
//     where xh w + b cancels (fp32 error ~1e-6 of the terms, |terms| <= ~10).
//   mean, rstd (fp32): sums of C terms, relative error well below 1e-5.
//   dx (fp32): rstd (g - mean g - xh mean(g xh)) cancels; the fp32 sums of C terms have
//     relative error <= ~C 2^-24 worst case (~7e-4 at C = 12288, typically sqrt(C) times
//     less), so atol = 1e-4 of the largest |dx| and rtol 1e-3.
//   dw, db (fp32): sums over N rows (per-thread partials, then atomics): rtol 1e-4 and
//     atol 1e-5 of the largest value.
// The gradients start non-zero on both sides: the kernels accumulate (+=).
#include <gtest/gtest.h>

#include <vector>

#include "cuda_test_util.hpp"
#include "kernel_ref_util.hpp"
#include "strata/kernels/cpu/norm.hpp"
#include "strata/kernels/cuda/norm.hpp"

namespace strata::test {
namespace {

namespace cpu = kernels::cpu;
namespace cu = kernels::cuda;
using kernels::cuda::index_t;

class CudaNorm : public CudaTest {};

struct Shape {
  index_t N, C;
};
const std::vector<Shape> kShapes = {{1, 1}, {1, 37}, {5, 37}, {3000, 773}, {1, 9000}, {70, 12288}};

struct Data {
  std::vector<float> x, w, b, dy, dx0, dw0, db0;
};

Data make_data(Shape s, std::uint64_t seed) {
  const auto NC = std::size_t(s.N * s.C), C = std::size_t(s.C);
  Data d;
  // A row offset (mean ~1.5) makes LayerNorm's mean matter; weights around 1.
  d.x = randn_bf16(NC, seed, 2.0);
  for (auto& v : d.x) v = bf16_round(v + 1.5f);
  d.w = randn_bf16(C, seed + 1, 0.3);
  for (auto& v : d.w) v = bf16_round(v + 1.0f);
  d.b = randn_bf16(C, seed + 2, 0.5);
  d.dy = randn_bf16(NC, seed + 3);
  d.dx0 = randn_f32(NC, seed + 4, 0.1);
  d.dw0 = randn_f32(C, seed + 5, 0.1);
  d.db0 = randn_f32(C, seed + 6, 0.1);
  return d;
}

TEST_F(CudaNorm, LayerNormForwardBackwardMatchCpu) {
  const float eps = 1e-5f;
  for (const Shape s : kShapes) {
    for (bool bias : {true, false}) {
      const Data d = make_data(s, 100 + std::uint64_t(s.C));
      const auto NC = std::size_t(s.N * s.C), N = std::size_t(s.N);
      const auto x = to_double(d.x), w = to_double(d.w), b = to_double(d.b), dy = to_double(d.dy);
      std::vector<double> y(NC), mean(N), rstd(N), dx = to_double(d.dx0), dw = to_double(d.dw0),
                                                   db = to_double(d.db0);
      cpu::layernorm_forward<double>(y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                                     bias ? b.data() : nullptr, s.N, s.C, double(eps));
      cpu::layernorm_backward<double>(dx.data(), dw.data(), bias ? db.data() : nullptr, dy.data(), x.data(),
                                      w.data(), mean.data(), rstd.data(), s.N, s.C);

      DeviceBuffer<bf16> gx(to_bf16(d.x)), gw(to_bf16(d.w)), gb(to_bf16(d.b)), gdy(to_bf16(d.dy)), gy(NC);
      DeviceBuffer<float> gmean(N), grstd(N), gdx(d.dx0), gdw(d.dw0), gdb(d.db0);
      cu::layernorm_forward(gy.get(), gmean.get(), grstd.get(), gx.get(), gw.get(), bias ? gb.get() : nullptr,
                            s.N, s.C, eps, nullptr);
      cu::layernorm_backward(gdx.get(), gdw.get(), bias ? gdb.get() : nullptr, gdy.get(), gx.get(), gw.get(),
                             gmean.get(), grstd.get(), s.N, s.C, nullptr);
      const std::string at = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + (bias ? " bias" : "");
      EXPECT_TRUE(all_close(to_float(gy.download()), to_float(y), kBf16Rtol, 1e-4)) << at;
      EXPECT_TRUE(all_close(gmean.download(), to_float(mean), 1e-5, 1e-5)) << at;
      EXPECT_TRUE(all_close(grstd.download(), to_float(rstd), 1e-5, 0)) << at;
      EXPECT_TRUE(all_close(gdx.download(), to_float(dx), 1e-3, 1e-4 * max_abs(dx))) << at;
      EXPECT_TRUE(all_close(gdw.download(), to_float(dw), 1e-4, 1e-5 * max_abs(dw))) << at;
      if (bias) {
        EXPECT_TRUE(all_close(gdb.download(), to_float(db), 1e-4, 1e-5 * max_abs(db))) << at;
      } else {
        EXPECT_TRUE(all_close(gdb.download(), d.db0, 0, 0)) << at << ": db untouched without bias";
      }
    }
  }
}

TEST_F(CudaNorm, RmsNormForwardBackwardMatchCpu) {
  const float eps = 1e-6f;
  for (const Shape s : kShapes) {
    const Data d = make_data(s, 200 + std::uint64_t(s.C));
    const auto NC = std::size_t(s.N * s.C), N = std::size_t(s.N);
    const auto x = to_double(d.x), w = to_double(d.w), dy = to_double(d.dy);
    std::vector<double> y(NC), rstd(N), dx = to_double(d.dx0), dw = to_double(d.dw0);
    cpu::rmsnorm_forward<double>(y.data(), rstd.data(), x.data(), w.data(), s.N, s.C, double(eps));
    cpu::rmsnorm_backward<double>(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), s.N, s.C);

    DeviceBuffer<bf16> gx(to_bf16(d.x)), gw(to_bf16(d.w)), gdy(to_bf16(d.dy)), gy(NC);
    DeviceBuffer<float> grstd(N), gdx(d.dx0), gdw(d.dw0);
    cu::rmsnorm_forward(gy.get(), grstd.get(), gx.get(), gw.get(), s.N, s.C, eps, nullptr);
    cu::rmsnorm_backward(gdx.get(), gdw.get(), gdy.get(), gx.get(), gw.get(), grstd.get(), s.N, s.C, nullptr);
    const std::string at = "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
    EXPECT_TRUE(all_close(to_float(gy.download()), to_float(y), kBf16Rtol, 1e-4)) << at;
    EXPECT_TRUE(all_close(grstd.download(), to_float(rstd), 1e-5, 0)) << at;
    EXPECT_TRUE(all_close(gdx.download(), to_float(dx), 1e-3, 1e-4 * max_abs(dx))) << at;
    EXPECT_TRUE(all_close(gdw.download(), to_float(dw), 1e-4, 1e-5 * max_abs(dw))) << at;
  }
}

// The backward with dx = nullptr (only parameter gradients) must still add dw/db.
TEST_F(CudaNorm, BackwardWithoutDxStillAddsWeightGradients) {
  const Shape s{9, 130};
  const Data d = make_data(s, 300);
  const auto NC = std::size_t(s.N * s.C), N = std::size_t(s.N);
  const auto x = to_double(d.x), w = to_double(d.w), dy = to_double(d.dy);
  std::vector<double> y(NC), rstd(N), dw = to_double(d.dw0);
  cpu::rmsnorm_forward<double>(y.data(), rstd.data(), x.data(), w.data(), s.N, s.C, 1e-6);
  cpu::rmsnorm_backward<double>(nullptr, dw.data(), dy.data(), x.data(), w.data(), rstd.data(), s.N, s.C);
  DeviceBuffer<bf16> gx(to_bf16(d.x)), gw(to_bf16(d.w)), gdy(to_bf16(d.dy)), gy(NC);
  DeviceBuffer<float> grstd(N), gdw(d.dw0);
  cu::rmsnorm_forward(gy.get(), grstd.get(), gx.get(), gw.get(), s.N, s.C, 1e-6f, nullptr);
  cu::rmsnorm_backward(nullptr, gdw.get(), gdy.get(), gx.get(), gw.get(), grstd.get(), s.N, s.C, nullptr);
  EXPECT_TRUE(all_close(gdw.download(), to_float(dw), 1e-4, 1e-5 * max_abs(dw)));
}

}  // namespace
}  // namespace strata::test
