// GPU test of the segmented AdamW update against the CPU kernel in double, on the same
// fp32 state and hyper-parameters (the float values, widened). Skipped without a GPU.
// Layout: a flat parameter buffer (param_bf16, and grad when !grad_at_state) of P
// elements and this rank's state (master, m, v, and grad when grad_at_state) of S
// elements; three segments with different weight decays, gaps between them in both
// buffers (must stay untouched), sizes not multiples of a block, one segment of 1 element.
// Tolerances: each element is a few fp32 operations on O(1) values: master agrees with
// the double reference to a few ulp of O(1) values (rtol 1e-6, atol 1e-6); v (a sum of
// positive terms) to a few ulp (rtol 1e-5); m = b1 m + (1 - b1) g can cancel, so its error
// is a few ulp of the terms (|terms| <= ~0.4: ulp 3e-8), atol 1e-7;
// param_bf16 must be exactly bf16(master) as downloaded (round to nearest even).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.hpp"
#include "kernel_ref_util.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cuda/adamw.hpp"

namespace strata::test {
namespace {

namespace cpu = kernels::cpu;
namespace cu = kernels::cuda;
using kernels::cuda::index_t;

class CudaAdamW : public CudaTest {};

TEST_F(CudaAdamW, SegmentsMatchCpuAtSteps1And10BothGradLayouts) {
  const std::vector<cu::AdamWSegment> segs = {
      {/*param_offset*/ 5, /*state_offset*/ 0, /*numel*/ 1000, /*weight_decay*/ 0.1f},
      {1300, 1003, 1, 0.0f},
      {1400, 1010, 70001, 0.05f},
  };
  const index_t P = 1400 + 70001 + 9, S = 1010 + 70001 + 4;
  index_t max_numel = 0;
  for (const auto& s : segs) max_numel = std::max(max_numel, s.numel);
  for (bool grad_at_state : {true, false}) {
    for (long step : {1L, 10L}) {
      const cu::AdamWStep p{/*lr*/ 2e-3f,  /*beta1*/ 0.9f,      /*beta2*/ 0.95f,
                            /*eps*/ 1e-8f, /*grad_scale*/ 0.7f, step};
      const auto master0 = randn_f32(std::size_t(S), 60), m0 = randn_f32(std::size_t(S), 61, 0.05);
      auto v0 = randn_f32(std::size_t(S), 62, 0.05);
      for (float& x : v0) x = step == 1 ? 0.0f : x * x;  // a fresh v at step 1, a used one at 10
      auto m_init = m0;
      if (step == 1) std::fill(m_init.begin(), m_init.end(), 0.0f);
      const auto grad = randn_f32(std::size_t(grad_at_state ? S : P), 63);
      const std::vector<float> param0 = randn_bf16(std::size_t(P), 64);

      // Reference: each segment through the CPU kernel in double.
      std::vector<double> master = to_double(master0), m = to_double(m_init), v = to_double(v0);
      std::vector<float> want_param = param0;  // outside the segments: unchanged
      for (const auto& s : segs) {
        const index_t g_off = grad_at_state ? s.state_offset : s.param_offset;
        std::vector<double> g(grad.begin() + g_off, grad.begin() + g_off + s.numel);
        cpu::adamw_update<double>(master.data() + s.state_offset, g.data(), m.data() + s.state_offset,
                                  v.data() + s.state_offset, s.numel,
                                  {double(p.lr), double(p.beta1), double(p.beta2), double(p.eps),
                                   double(s.weight_decay), double(p.grad_scale), step});
      }

      DeviceBuffer<cu::AdamWSegment> dsegs(segs);
      DeviceBuffer<float> dmaster(master0), dm(m_init), dv(v0), dgrad(grad);
      DeviceBuffer<bf16> dparam(to_bf16(param0));
      cu::adamw_update(dmaster.get(), dparam.get(), dgrad.get(), dm.get(), dv.get(), dsegs.get(),
                       int(segs.size()), max_numel, grad_at_state, p, nullptr);
      const auto got_master = dmaster.download();
      for (const auto& s : segs)
        for (index_t i = 0; i < s.numel; ++i)
          want_param[std::size_t(s.param_offset + i)] =
              bf16_round(got_master[std::size_t(s.state_offset + i)]);
      const std::string at =
          std::string(grad_at_state ? "grad at state" : "grad at param") + ", step " + std::to_string(step);
      // The gaps of the state buffers hold their initial values in the reference too.
      EXPECT_TRUE(all_close(got_master, to_float(master), 1e-6, 1e-6)) << at;
      EXPECT_TRUE(all_close(dm.download(), to_float(m), 1e-5, 1e-7)) << at;
      EXPECT_TRUE(all_close(dv.download(), to_float(v), 1e-5, 1e-12)) << at;
      EXPECT_TRUE(all_close(to_float(dparam.download()), want_param, 0, 0)) << at;
    }
  }
}

}  // namespace
}  // namespace strata::test
