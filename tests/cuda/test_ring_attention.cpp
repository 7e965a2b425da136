// Ring attention's block kernels on the GPU (kernels/cuda/attention.hpp, block_attention_*)
// against the CPU block kernels (kernels/cpu/ring_attention.hpp) run in fp32 on the same
// bf16-rounded inputs: Tq query rows at positions q_pos.. against Tk key rows at k_pos..,
// causal by position, GQA, strided rows and batches, head sizes 64 and 128. The cases cover
// the diagonal block, a block wholly in the past, partly masked blocks where some rows see no
// key, a fully masked block, Tq != Tk, bidirectional attention, and one that spans several
// 64-row tiles.
//
// Forward: the block merges into a running (out, lse) that holds an earlier block's result
// (random out, lse; some rows empty: lse = -inf, out = 0). Rows that see no key of the block
// and every row of a fully masked block keep (out, lse) bit for bit. Backward: from a final
// (out, lse), the gradients ADD into fp32 accumulators that start from random values; the
// added amounts are compared.
//
// Tolerances as tests/cuda/test_attention.cpp argues them (P and dS rounded to bf16 before
// the tensor-core products, out rounded to bf16): 2% of the largest reference magnitude plus
// 2% relative plus 1e-4; lse (fp32 throughout) 1e-3 absolute, and equal where either is -inf.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cuda_test_util.hpp"
#include "strata/kernels/cpu/ring_attention.hpp"
#include "strata/kernels/cuda/attention.hpp"

using namespace strata::test;
namespace cuda = strata::kernels::cuda;
namespace cpu = strata::kernels::cpu;
using cuda::index_t;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Case {
  index_t B, Tq, Tk, NH, NKV, HS, q_pos, k_pos;
  bool causal;
  const char* what;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << c.what << ": B " << c.B << " Tq " << c.Tq << " Tk " << c.Tk << " NH " << c.NH << " NKV "
            << c.NKV << " HS " << c.HS << " q_pos " << c.q_pos << " k_pos " << c.k_pos
            << (c.causal ? " causal" : " bidirectional");
}

std::vector<Case> all_cases() {
  return {
      {2, 100, 100, 8, 2, 64, 0, 0, true, "diagonal block, GQA"},
      {2, 64, 64, 4, 4, 128, 192, 192, true, "diagonal block at an offset"},
      {2, 70, 130, 4, 4, 128, 200, 0, true, "keys wholly in the past"},
      {1, 64, 64, 4, 2, 64, 32, 64, true, "half the rows see no key, the rest a prefix"},
      {2, 130, 40, 4, 1, 64, 0, 60, true, "Tq > Tk, the first 60 rows see nothing"},
      {2, 50, 50, 4, 2, 64, 0, 100, true, "fully masked (every key after every query)"},
      {2, 30, 90, 8, 2, 128, 500, 0, false, "bidirectional, Tq < Tk"},
      {1, 200, 150, 2, 2, 64, 150, 100, true, "several tiles each way, partly masked"},
  };
}

// Strided layouts as the ring's (rows of a longer sequence, padded rows and batches), so
// that the strides are exercised: every batch stride a multiple of 8 elements.
struct Layout {
  Case c;
  index_t ld_q() const { return c.NH * c.HS + 8; }
  index_t ld_kv() const { return c.NKV * c.HS + 8; }
  index_t bs_q() const { return (c.Tq + 3) * ld_q(); }
  index_t bs_kv() const { return (c.Tk + 5) * ld_kv(); }
  index_t bs_o() const { return (c.Tq + 2) * c.NH * c.HS; }
  index_t bs_l() const { return (c.Tq + 1) * c.NH; }
  index_t n_q() const { return c.B * bs_q(); }
  index_t n_kv() const { return c.B * bs_kv(); }
  index_t n_o() const { return c.B * bs_o(); }
  index_t n_l() const { return c.B * bs_l(); }
  cuda::FlashBlockShape gpu() const {
    return {c.B,    c.Tq,    c.Tk,   c.NH,   c.NKV,   c.HS,    ld_q(),  ld_kv(),
            bs_q(), bs_kv(), bs_o(), bs_l(), c.q_pos, c.k_pos, c.causal};
  }
  cpu::BlockAttentionShape host() const {
    return {c.B,    c.Tq,    c.Tk,   c.NH,   c.NKV,   c.HS,    ld_q(),  ld_kv(),
            bs_q(), bs_kv(), bs_o(), bs_l(), c.q_pos, c.k_pos, c.causal};
  }
  // Query row t sees some key of the block.
  bool row_sees_a_key(index_t t) const { return !c.causal || c.q_pos + t >= c.k_pos; }
};

std::vector<float> random_bf16(std::size_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = bf16_round(nd(rng));
  return x;
}

// |got - want| <= 0.02 max|want| + 0.02 |want| + 1e-4 over the listed elements.
::testing::AssertionResult close_to_max(const std::vector<float>& got, const std::vector<float>& want) {
  double mx = 0;
  for (float w : want) mx = std::max(mx, std::abs(double(w)));
  return all_close(got, want, 2e-2, 2e-2 * mx + 1e-4);
}

// The elements of out (or of the gradient of q, k, v) that are data, not padding.
template <class Get>
std::vector<float> gather(index_t B, index_t rows, index_t width, index_t ld, index_t bs, Get get) {
  std::vector<float> x;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < rows; ++t)
      for (index_t i = 0; i < width; ++i) x.push_back(get(b * bs + t * ld + i));
  return x;
}

struct Inputs {
  std::vector<float> q, k, v;
};
Inputs inputs(const Layout& l, unsigned seed) {
  // q scaled so that the scores have a standard deviation ~2 (a softmax far from uniform)
  Inputs in{random_bf16(std::size_t(l.n_q()), seed, 2.0f), random_bf16(std::size_t(l.n_kv()), seed + 1, 1.0f),
            random_bf16(std::size_t(l.n_kv()), seed + 2, 1.0f)};
  return in;
}

}  // namespace

class CudaRingAttention : public CudaTest {};

TEST_F(CudaRingAttention, ForwardMergesIntoTheRunningOutAndLseAsTheCpuBlockKernel) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(::testing::Message() << c);
    const Layout l{c};
    const Inputs in = inputs(l, 11);
    // The running state of an earlier block: random out and lse; every 5th row empty.
    std::vector<float> out0 = random_bf16(std::size_t(l.n_o()), 21, 1.0f);
    std::vector<float> lse0 = random_bf16(std::size_t(l.n_l()), 22, 1.0f);
    for (index_t b = 0; b < c.B; ++b)
      for (index_t t = 0; t < c.Tq; ++t)
        for (index_t h = 0; h < c.NH; ++h) {
          float& x = lse0[std::size_t(b * l.bs_l() + t * c.NH + h)];
          x = bf16_round(x + 2.0f);
          if ((t + h) % 5 == 0) {
            x = kNegInf;
            for (index_t i = 0; i < c.HS; ++i)
              out0[std::size_t(b * l.bs_o() + (t * c.NH + h) * c.HS + i)] = 0.0f;
          }
        }
    // The CPU block kernel in fp32 on the same values.
    std::vector<float> want_out = out0, want_lse = lse0;
    std::vector<float> work(std::size_t(cpu::block_attention_work_elems(c.Tq, c.Tk, c.HS)));
    cpu::block_attention_forward<float>(want_out.data(), want_lse.data(), work.data(), in.q.data(),
                                        in.k.data(), in.v.data(), l.host());

    DeviceBuffer<bf16> q(to_bf16(in.q)), k(to_bf16(in.k)), v(to_bf16(in.v)), out(to_bf16(out0));
    DeviceBuffer<float> lse(lse0);
    cuda::block_attention_forward(out.get(), lse.get(), q.get(), k.get(), v.get(), l.gpu(), nullptr);
    const std::vector<float> got_out = to_float(out.download()), got_lse = lse.download();

    const index_t w = c.NH * c.HS, ldo = c.NH * c.HS;
    auto at = [](const std::vector<float>& x) { return [&x](index_t i) { return x[std::size_t(i)]; }; };
    EXPECT_TRUE(close_to_max(gather(c.B, c.Tq, w, ldo, l.bs_o(), at(got_out)),
                             gather(c.B, c.Tq, w, ldo, l.bs_o(), at(want_out))))
        << "out";
    // lse: 1e-3 where finite; -inf exactly where the reference has it. Rows that see no key
    // (and every row of a fully masked block) keep out and lse bit for bit.
    for (index_t b = 0; b < c.B; ++b)
      for (index_t t = 0; t < c.Tq; ++t)
        for (index_t h = 0; h < c.NH; ++h) {
          const std::size_t i = std::size_t(b * l.bs_l() + t * c.NH + h);
          if (std::isinf(want_lse[i])) {
            EXPECT_EQ(got_lse[i], want_lse[i]) << "lse at b " << b << " t " << t << " h " << h;
          } else {
            EXPECT_NEAR(got_lse[i], want_lse[i], 1e-3) << "lse at b " << b << " t " << t << " h " << h;
          }
          if (!l.row_sees_a_key(t)) {
            EXPECT_EQ(got_lse[i], lse0[i]) << "unseen row's lse moved: b " << b << " t " << t << " h " << h;
            for (index_t d = 0; d < c.HS; ++d) {
              const std::size_t o = std::size_t(b * l.bs_o() + (t * c.NH + h) * c.HS + d);
              ASSERT_EQ(got_out[o], out0[o]) << "unseen row's out moved: b " << b << " t " << t << " h " << h;
            }
          }
        }
    // The padding between batches is never written.
    EXPECT_EQ(got_out[std::size_t(l.bs_o() - 1)], out0[std::size_t(l.bs_o() - 1)]);
    EXPECT_EQ(got_lse[std::size_t(l.bs_l() - 1)], lse0[std::size_t(l.bs_l() - 1)]);
  }
}

TEST_F(CudaRingAttention, BackwardAddsTheCpuBlockKernelsGradients) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(::testing::Message() << c);
    const Layout l{c};
    const Inputs in = inputs(l, 31);
    // A final (out, lse): the block's own attention (from the empty state), out in bf16, so
    // that P = exp(S - lse) <= 1 as after a whole ring.
    std::vector<float> out(std::size_t(l.n_o()), 0.0f), lse(std::size_t(l.n_l()), kNegInf);
    std::vector<float> work(std::size_t(cpu::block_attention_work_elems(c.Tq, c.Tk, c.HS)));
    cpu::block_attention_forward<float>(out.data(), lse.data(), work.data(), in.q.data(), in.k.data(),
                                        in.v.data(), l.host());
    out = bf16_round(out);
    const std::vector<float> dout = random_bf16(std::size_t(l.n_o()), 41, 1.0f);
    // Accumulators from earlier blocks: random fp32.
    const std::vector<float> dq0 = random_bf16(std::size_t(l.n_q()), 51, 1.0f),
                             dk0 = random_bf16(std::size_t(l.n_kv()), 52, 1.0f),
                             dv0 = random_bf16(std::size_t(l.n_kv()), 53, 1.0f);
    std::vector<float> want_dq = dq0, want_dk = dk0, want_dv = dv0;
    cpu::block_attention_backward<float>(want_dq.data(), want_dk.data(), want_dv.data(), work.data(),
                                         dout.data(), out.data(), lse.data(), in.q.data(), in.k.data(),
                                         in.v.data(), l.host());

    DeviceBuffer<bf16> q(to_bf16(in.q)), k(to_bf16(in.k)), v(to_bf16(in.v)), d_out(to_bf16(out)),
        d_dout(to_bf16(dout));
    DeviceBuffer<float> d_lse(lse), dq(dq0), dk(dk0), dv(dv0);
    DeviceBuffer<float> ws(std::size_t(cuda::block_attention_workspace_floats(c.B, c.Tq, c.NH)));
    cuda::block_attention_backward(dq.get(), dk.get(), dv.get(), ws.get(), d_dout.get(), d_out.get(),
                                   d_lse.get(), q.get(), k.get(), v.get(), l.gpu(), nullptr);
    const std::vector<float> got_dq = dq.download(), got_dk = dk.download(), got_dv = dv.download();

    // The added amounts (got - start against want - start), data elements only.
    auto delta = [](const std::vector<float>& x, const std::vector<float>& x0) {
      return [&x, &x0](index_t i) { return float(double(x[std::size_t(i)]) - double(x0[std::size_t(i)])); };
    };
    const index_t wq = c.NH * c.HS, wkv = c.NKV * c.HS;
    EXPECT_TRUE(close_to_max(gather(c.B, c.Tq, wq, l.ld_q(), l.bs_q(), delta(got_dq, dq0)),
                             gather(c.B, c.Tq, wq, l.ld_q(), l.bs_q(), delta(want_dq, dq0))))
        << "dq";
    EXPECT_TRUE(close_to_max(gather(c.B, c.Tk, wkv, l.ld_kv(), l.bs_kv(), delta(got_dk, dk0)),
                             gather(c.B, c.Tk, wkv, l.ld_kv(), l.bs_kv(), delta(want_dk, dk0))))
        << "dk";
    EXPECT_TRUE(close_to_max(gather(c.B, c.Tk, wkv, l.ld_kv(), l.bs_kv(), delta(got_dv, dv0)),
                             gather(c.B, c.Tk, wkv, l.ld_kv(), l.bs_kv(), delta(want_dv, dv0))))
        << "dv";
    // Padding columns and rows are not written; a fully masked block adds nothing at all.
    EXPECT_EQ(got_dq[std::size_t(l.ld_q() - 1)], dq0[std::size_t(l.ld_q() - 1)]);
    EXPECT_EQ(got_dk[std::size_t(l.bs_kv() - 1)], dk0[std::size_t(l.bs_kv() - 1)]);
    if (c.causal && c.k_pos > c.q_pos + c.Tq - 1) {
      EXPECT_EQ(got_dq, dq0);
      EXPECT_EQ(got_dk, dk0);
      EXPECT_EQ(got_dv, dv0);
    }
  }
}

// The ring's whole use: a causal sequence of 4 chunks (2 cp ranks' worth), every (query chunk,
// key chunk) block merged from the empty state, equals the one-call attention of the whole
// sequence (attention_forward, the same kernel with q_pos = k_pos = 0) within bf16 rounding;
// the blocks' backward summed in fp32 equals attention_backward.
TEST_F(CudaRingAttention, BlocksOfASequenceMergeToTheWholeAttention) {
  const index_t B = 2, T = 256, NH = 4, NKV = 2, HS = 64, Q = NH * HS, KV = NKV * HS, c = 64;
  const auto q = random_bf16(std::size_t(B * T * Q), 61, 2.0f),
             k = random_bf16(std::size_t(B * T * KV), 62, 1.0f),
             v = random_bf16(std::size_t(B * T * KV), 63, 1.0f),
             dout = random_bf16(std::size_t(B * T * Q), 64, 1.0f);
  DeviceBuffer<bf16> dq_(to_bf16(q)), dk_(to_bf16(k)), dv_(to_bf16(v)), d_dout(to_bf16(dout));
  // whole
  const cuda::FlashShape whole{B, T, NH, NKV, HS, Q, KV, true};
  DeviceBuffer<bf16> out_w(std::size_t(B * T * Q)), gq_w(std::size_t(B * T * Q)),
      gk_w(std::size_t(B * T * KV)), gv_w(std::size_t(B * T * KV));
  DeviceBuffer<float> lse_w(std::size_t(B * NH * T)),
      ws_w(std::size_t(cuda::attention_workspace_floats(whole)));
  cuda::attention_forward(out_w.get(), lse_w.get(), dq_.get(), dk_.get(), dv_.get(), whole, nullptr);
  cuda::attention_backward(gq_w.get(), gk_w.get(), gv_w.get(), ws_w.get(), d_dout.get(), out_w.get(),
                           lse_w.get(), dq_.get(), dk_.get(), dv_.get(), whole, nullptr);
  // blocks: out rows of Q, lse rows of NH (the ring's layouts), in the ring's merge order
  DeviceBuffer<bf16> out_b(std::size_t(B * T * Q));
  DeviceBuffer<float> lse_b(std::vector<float>(std::size_t(B * T * NH), kNegInf));
  DeviceBuffer<float> gq(std::size_t(B * T * Q)), gk(std::size_t(B * T * KV)), gv(std::size_t(B * T * KV)),
      ws(std::size_t(cuda::block_attention_workspace_floats(B, c, NH)));
  auto block = [&](index_t qi, index_t ki) {
    return cuda::FlashBlockShape{B,     c,      c,     NH,     NKV,    HS,     Q,   KV,
                                 T * Q, T * KV, T * Q, T * NH, qi * c, ki * c, true};
  };
  for (index_t ki : {3, 0, 2, 1})
    for (index_t qi = 0; qi < T / c; ++qi)
      cuda::block_attention_forward(out_b.get() + qi * c * Q, lse_b.get() + qi * c * NH,
                                    dq_.get() + qi * c * Q, dk_.get() + ki * c * KV, dv_.get() + ki * c * KV,
                                    block(qi, ki), nullptr);
  for (index_t ki : {1, 3, 0, 2})
    for (index_t qi = 0; qi < T / c; ++qi)
      cuda::block_attention_backward(
          gq.get() + qi * c * Q, gk.get() + ki * c * KV, gv.get() + ki * c * KV, ws.get(),
          d_dout.get() + qi * c * Q, out_b.get() + qi * c * Q, lse_b.get() + qi * c * NH,
          dq_.get() + qi * c * Q, dk_.get() + ki * c * KV, dv_.get() + ki * c * KV, block(qi, ki), nullptr);
  EXPECT_TRUE(close_to_max(to_float(out_b.download()), to_float(out_w.download()))) << "out";
  // lse: [B, T, NH] against the whole kernel's [B, NH, T]
  const auto lb = lse_b.download(), lw = lse_w.download();
  std::vector<float> lw_t(lb.size());
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t)
      for (index_t h = 0; h < NH; ++h)
        lw_t[std::size_t((b * T + t) * NH + h)] = lw[std::size_t((b * NH + h) * T + t)];
  EXPECT_TRUE(all_close(lb, lw_t, 0.0, 1e-3)) << "lse";
  EXPECT_TRUE(close_to_max(gq.download(), to_float(gq_w.download()))) << "dq";
  EXPECT_TRUE(close_to_max(gk.download(), to_float(gk_w.download()))) << "dk";
  EXPECT_TRUE(close_to_max(gv.download(), to_float(gv_w.download()))) << "dv";
}

TEST(CudaRingAttentionShape, BadShapesAreRefusedWithTheirValues) {
  cuda::FlashBlockShape s{1, 8, 8, 4, 4, 96, 384, 384, 8 * 384, 8 * 384, 8 * 384, 8 * 4, 0, 0, true};
  try {
    cuda::check_flash_block_shape(s);
    ADD_FAILURE() << "head size 96 accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("HS = 96"), std::string::npos) << e.what();
  }
  s.HS = 64;
  s.ld_q = s.ld_kv = 256;
  s.bs_q = 8 * 256 + 4;
  try {
    cuda::check_flash_block_shape(s);
    ADD_FAILURE() << "a batch stride that is not a multiple of 8 accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bs_q = 2052"), std::string::npos) << e.what();
  }
}
