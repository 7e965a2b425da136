// Fused flash attention (kernels/cuda/attention.hpp) against the CPU reference
// (kernels/cpu/attention.hpp) run in double on the same bf16-rounded inputs. q, k, v (and
// dq, dk, dv) live inside one fused buffer qkv[B, T, (NH + 2 NKV) HS + 8], as the fused QKV
// projection produces them, so the strided rows are exercised in every case.
//
// Tolerances: the GPU rounds P (forward and backward) and dS to bf16 before the tensor-core
// products (relative 2^-9 each, random signs, summed over up to T terms) and rounds out, dq,
// dk, dv to bf16 (2^-9 relative); D = rowsum(dout * out) uses the bf16 out. Everything else
// is fp32 on exact bf16 inputs. Measured against the largest reference magnitude of each
// tensor, these stay well under 1%; the tests allow 2% of that maximum plus 2% relative,
// ~10x the expected error and far below what a wrong index or mask gives (O(1)). lse is fp32
// throughout: 1e-3 absolute.
// Absolute floor 1e-4: at T = 1 the softmax of a single key has zero gradient, so the
// reference dq and dk are exactly 0 (max 0), while the GPU keeps the fp32 cancellation residue
// of dS = P (dP - D): dP (tensor cores) and D (warp sum) add the same ~sqrt(HS) ~ 11 sized
// dot product in different orders, ~1e-5 apart, times scale |k| or scale |q| (<~ 0.9) -- up
// to a few 1e-6 (a host replay of the two summation orders gives 1.1e-6 for dq), above a 1e-6
// floor; 1e-4 is well above that and still far below any indexing or mask error.
#include <cmath>
#include <random>
#include <vector>

#include "cuda_test_util.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cuda/attention.hpp"

using namespace strata::test;
namespace cuda = strata::kernels::cuda;
namespace cpu = strata::kernels::cpu;
using cuda::index_t;

namespace {

struct Case {
  index_t B, T, NH, NKV, HS;
  bool causal;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "B " << c.B << " T " << c.T << " NH " << c.NH << " NKV " << c.NKV << " HS " << c.HS
            << (c.causal ? " causal" : " bidirectional");
}

// Every case of the matrix: HS 64/128, NH = NKV and GQA 8/2, T not a tile multiple, T = 1,
// T spanning several tiles, causal and bidirectional.
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (bool causal : {true, false})
    for (index_t HS : {64, 128})
      for (auto [NH, NKV] : {std::pair<index_t, index_t>{4, 4}, {8, 2}})
        for (index_t T : {100, 1, 130}) cases.push_back({2, T, NH, NKV, HS, causal});
  return cases;
}

struct Fused {
  Case c;
  index_t ld() const { return (c.NH + 2 * c.NKV) * c.HS + 8; }
  index_t koff() const { return c.NH * c.HS; }
  index_t voff() const { return (c.NH + c.NKV) * c.HS; }
  index_t n() const { return c.B * c.T * ld(); }
  index_t n_out() const { return c.B * c.T * c.NH * c.HS; }
  cuda::FlashShape gpu() const { return {c.B, c.T, c.NH, c.NKV, c.HS, ld(), ld(), c.causal}; }
  cpu::AttentionShape host() const { return {c.B, c.T, c.NH, c.NKV, c.HS, ld(), ld(), c.causal}; }
};

std::vector<float> random_bf16_values(std::size_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = bf16_round(nd(rng));
  return x;
}

// |got - want| <= 0.02 max|want| + 0.02 |want| + 1e-4 (see the top of the file).
::testing::AssertionResult close_to_max(const std::vector<float>& got, const std::vector<double>& want) {
  double mx = 0;
  for (double w : want) mx = std::max(mx, std::abs(w));
  return all_close(got, std::vector<float>(want.begin(), want.end()), 2e-2, 2e-2 * mx + 1e-4);
}

// Only the q/k/v columns of a fused buffer (the padding is not an output).
std::vector<float> columns(const std::vector<float>& fused, const Fused& f, index_t off, index_t width) {
  std::vector<float> out;
  for (index_t r = 0; r < f.c.B * f.c.T; ++r)
    for (index_t i = 0; i < width; ++i) out.push_back(fused[r * f.ld() + off + i]);
  return out;
}
std::vector<double> columns(const std::vector<double>& fused, const Fused& f, index_t off, index_t width) {
  std::vector<double> out;
  for (index_t r = 0; r < f.c.B * f.c.T; ++r)
    for (index_t i = 0; i < width; ++i) out.push_back(fused[r * f.ld() + off + i]);
  return out;
}

struct Reference {
  std::vector<double> out, lse, dqkv;
};

// The CPU reference in double: out, lse from the saved probabilities, and dq/dk/dv.
Reference reference(const Fused& f, const std::vector<float>& qkv, const std::vector<float>& dout) {
  const Case& c = f.c;
  std::vector<double> x(qkv.begin(), qkv.end()), dO(dout.begin(), dout.end());
  Reference r;
  r.out.assign(std::size_t(f.n_out()), 0.0);
  std::vector<double> att(std::size_t(c.B * c.NH * c.T * c.T));
  cpu::attention_forward<double>(r.out.data(), att.data(), x.data(), x.data() + f.koff(), x.data() + f.voff(),
                                 f.host());
  // lse[b, h, t] = log sum_s exp(q_t . k_s / sqrt(HS)) over the visible s
  r.lse.assign(std::size_t(c.B * c.NH * c.T), 0.0);
  for (index_t b = 0; b < c.B; ++b)
    for (index_t h = 0; h < c.NH; ++h)
      for (index_t t = 0; t < c.T; ++t) {
        const index_t len = c.causal ? t + 1 : c.T, kvh = h / (c.NH / c.NKV);
        std::vector<double> s(len);
        double mx = -1e300;
        for (index_t u = 0; u < len; ++u) {
          double d = 0;
          for (index_t i = 0; i < c.HS; ++i)
            d += x[(b * c.T + t) * f.ld() + h * c.HS + i] *
                 x[(b * c.T + u) * f.ld() + f.koff() + kvh * c.HS + i];
          s[u] = d / std::sqrt(double(c.HS));
          mx = std::max(mx, s[u]);
        }
        double sum = 0;
        for (double e : s) sum += std::exp(e - mx);
        r.lse[(b * c.NH + h) * c.T + t] = mx + std::log(sum);
      }
  r.dqkv.assign(std::size_t(f.n()), 0.0);
  std::vector<double> scratch(std::size_t(c.T * c.T));
  cpu::attention_backward<double>(r.dqkv.data(), r.dqkv.data() + f.koff(), r.dqkv.data() + f.voff(),
                                  scratch.data(), dO.data(), att.data(), x.data(), x.data() + f.koff(),
                                  x.data() + f.voff(), f.host());
  return r;
}

}  // namespace

class CudaAttention : public CudaTest {};

TEST_F(CudaAttention, ForwardOutAndLseMatchCpuReferenceInDouble) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(::testing::Message() << c);
    const Fused f{c};
    // q scaled up so that the softmax is far from uniform (scores of standard deviation ~2)
    auto qkv = random_bf16_values(std::size_t(f.n()), 1, 1.0f);
    for (index_t r = 0; r < c.B * c.T; ++r)
      for (index_t i = 0; i < c.NH * c.HS; ++i) qkv[r * f.ld() + i] = bf16_round(2.0f * qkv[r * f.ld() + i]);
    const auto dout = random_bf16_values(std::size_t(f.n_out()), 2, 1.0f);
    const Reference ref = reference(f, qkv, dout);

    DeviceBuffer<bf16> d_qkv(to_bf16(qkv)), d_out(std::size_t(f.n_out()));
    DeviceBuffer<float> d_lse(std::size_t(c.B * c.NH * c.T));
    cuda::attention_forward(d_out.get(), d_lse.get(), d_qkv.get(), d_qkv.get() + f.koff(),
                            d_qkv.get() + f.voff(), f.gpu(), nullptr);
    EXPECT_TRUE(close_to_max(to_float(d_out.download()), ref.out));
    EXPECT_TRUE(all_close(d_lse.download(), std::vector<float>(ref.lse.begin(), ref.lse.end()), 0.0, 1e-3));
  }
}

TEST_F(CudaAttention, BackwardDqDkDvMatchCpuReferenceInDouble) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(::testing::Message() << c);
    const Fused f{c};
    auto qkv = random_bf16_values(std::size_t(f.n()), 3, 1.0f);
    for (index_t r = 0; r < c.B * c.T; ++r)
      for (index_t i = 0; i < c.NH * c.HS; ++i) qkv[r * f.ld() + i] = bf16_round(2.0f * qkv[r * f.ld() + i]);
    const auto dout = random_bf16_values(std::size_t(f.n_out()), 4, 1.0f);
    const Reference ref = reference(f, qkv, dout);

    DeviceBuffer<bf16> d_qkv(to_bf16(qkv)), d_out(std::size_t(f.n_out())), d_dout(to_bf16(dout));
    DeviceBuffer<float> d_lse(std::size_t(c.B * c.NH * c.T));
    const bf16 *q = d_qkv.get(), *k = q + f.koff(), *v = q + f.voff();
    cuda::attention_forward(d_out.get(), d_lse.get(), q, k, v, f.gpu(), nullptr);
    // dqkv starts as garbage: the backward overwrites (=) every q/k/v column
    DeviceBuffer<bf16> d_dqkv(to_bf16(std::vector<float>(std::size_t(f.n()), 123.0f)));
    DeviceBuffer<float> ws(std::size_t(cuda::attention_workspace_floats(f.gpu())));
    bf16* dq = d_dqkv.get();
    cuda::attention_backward(dq, dq + f.koff(), dq + f.voff(), ws.get(), d_dout.get(), d_out.get(),
                             d_lse.get(), q, k, v, f.gpu(), nullptr);
    const auto got = to_float(d_dqkv.download());
    EXPECT_TRUE(close_to_max(columns(got, f, 0, c.NH * c.HS), columns(ref.dqkv, f, 0, c.NH * c.HS))) << "dq";
    EXPECT_TRUE(
        close_to_max(columns(got, f, f.koff(), c.NKV * c.HS), columns(ref.dqkv, f, f.koff(), c.NKV * c.HS)))
        << "dk";
    EXPECT_TRUE(
        close_to_max(columns(got, f, f.voff(), c.NKV * c.HS), columns(ref.dqkv, f, f.voff(), c.NKV * c.HS)))
        << "dv";
    // the padding columns are not written
    EXPECT_EQ(got[f.ld() - 1], 123.0f);
  }
}

TEST_F(CudaAttention, BackwardIsDeterministicUpToAtomicOrderAndRepeatable) {
  // Two backward passes of the same inputs agree closely (the dq atomics may add in another
  // order: fp32 sums, then one bf16 rounding), so the work space is fully reset each call.
  const Case c{1, 200, 4, 2, 64, true};
  const Fused f{c};
  const auto qkv = random_bf16_values(std::size_t(f.n()), 5, 1.0f);
  const auto dout = random_bf16_values(std::size_t(f.n_out()), 6, 1.0f);
  DeviceBuffer<bf16> d_qkv(to_bf16(qkv)), d_out(std::size_t(f.n_out())), d_dout(to_bf16(dout));
  DeviceBuffer<float> d_lse(std::size_t(c.B * c.NH * c.T)),
      ws(std::size_t(cuda::attention_workspace_floats(f.gpu())));
  DeviceBuffer<bf16> g1(std::size_t(f.n())), g2(std::size_t(f.n()));
  const bf16 *q = d_qkv.get(), *k = q + f.koff(), *v = q + f.voff();
  cuda::attention_forward(d_out.get(), d_lse.get(), q, k, v, f.gpu(), nullptr);
  for (auto* g : {&g1, &g2})
    cuda::attention_backward(g->get(), g->get() + f.koff(), g->get() + f.voff(), ws.get(), d_dout.get(),
                             d_out.get(), d_lse.get(), q, k, v, f.gpu(), nullptr);
  EXPECT_TRUE(all_close(to_float(g1.download()), to_float(g2.download()), 1e-2, 1e-3));
}
