// Block attention with the log-sum-exp merge (ring_attention.hpp), the piece ring attention
// runs per key/value block: merged over the blocks of a sequence, in any order and with the
// query rows cut into blocks at their positions, it is the whole attention (attention.hpp);
// its backward, summed over the blocks, matches finite differences in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/ring_attention.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

namespace {

// q[B, T, NH, HS], k/v[B, T, NKV, HS], contiguous; GQA with 4 query heads over 2 KV heads.
struct Dims {
  index_t B = 2, T = 12, NH = 4, NKV = 2, HS = 3;
  index_t ldq() const { return NH * HS; }
  index_t ldkv() const { return NKV * HS; }
};

struct Cut {
  index_t q0, nq, k0, nk;  // query rows [q0, q0 + nq) against key rows [k0, k0 + nk)
};

// The blocks of a 12-position sequence: queries in 2 uneven blocks, keys in 3, visited in a
// scrambled order (the ring visits key blocks in rank order, different on every rank).
std::vector<Cut> cuts() {
  std::vector<Cut> c;
  for (index_t k : {2, 0, 1})
    for (index_t qi : {1, 0}) {
      const index_t q0 = qi ? 5 : 0, nq = qi ? 7 : 5;
      const index_t k0 = k == 0 ? 0 : (k == 1 ? 3 : 7), nk = k == 0 ? 3 : (k == 1 ? 4 : 5);
      c.push_back({q0, nq, k0, nk});
    }
  return c;
}

BlockAttentionShape shape_of(const Dims& d, const Cut& c, bool causal) {
  return {d.B,           c.nq,           c.nk,          d.NH,       d.NKV, d.HS, d.ldq(), d.ldkv(),
          d.T * d.ldq(), d.T * d.ldkv(), d.T * d.ldq(), d.T * d.NH, c.q0,  c.k0, causal};
}

template <class T>
void blocks_forward(std::vector<T>& out, std::vector<T>& lse, const std::vector<T>& q,
                    const std::vector<T>& k, const std::vector<T>& v, const Dims& d, bool causal) {
  out.assign(std::size_t(d.B * d.T * d.ldq()), T(0));
  lse.assign(std::size_t(d.B * d.T * d.NH), -std::numeric_limits<T>::infinity());
  std::vector<T> work(std::size_t(block_attention_work_elems(d.T, d.T, d.HS)));
  for (const Cut& c : cuts())
    block_attention_forward(out.data() + c.q0 * d.ldq(), lse.data() + c.q0 * d.NH, work.data(),
                            q.data() + c.q0 * d.ldq(), k.data() + c.k0 * d.ldkv(), v.data() + c.k0 * d.ldkv(),
                            shape_of(d, c, causal));
}

}  // namespace

TEST(RingAttention, BlocksMergedInAnyOrderMatchWholeAttentionAndLogSumExp) {
  const Dims d;
  for (bool causal : {true, false}) {
    const auto q = randn(std::size_t(d.B * d.T * d.ldq()), 11),
               k = randn(std::size_t(d.B * d.T * d.ldkv()), 12),
               v = randn(std::size_t(d.B * d.T * d.ldkv()), 13);
    std::vector<double> out, lse;
    blocks_forward(out, lse, q, k, v, d, causal);
    std::vector<double> want(out.size()), att(std::size_t(d.B * d.NH * d.T * d.T));
    attention_forward(want.data(), att.data(), q.data(), k.data(), v.data(),
                      AttentionShape{d.B, d.T, d.NH, d.NKV, d.HS, d.ldq(), d.ldkv(), causal});
    EXPECT_LT(max_abs_diff(out, want), 1e-12) << (causal ? "causal" : "bidirectional");
    // lse by explicit loops: log sum_u exp(q.k / sqrt(HS)) over the visible keys
    double worst = 0;
    for (index_t b = 0; b < d.B; ++b)
      for (index_t t = 0; t < d.T; ++t)
        for (index_t h = 0; h < d.NH; ++h) {
          double sum = 0;
          for (index_t u = 0; u < (causal ? t + 1 : d.T); ++u) {
            double s = 0;
            for (index_t i = 0; i < d.HS; ++i)
              s += q[std::size_t((b * d.T + t) * d.ldq() + h * d.HS + i)] *
                   k[std::size_t((b * d.T + u) * d.ldkv() + (h / 2) * d.HS + i)];
            sum += std::exp(s / std::sqrt(double(d.HS)));
          }
          worst = std::max(worst, std::abs(std::log(sum) - lse[std::size_t((b * d.T + t) * d.NH + h)]));
        }
    EXPECT_LT(worst, 1e-12);
    // fp32 agrees with fp64
    std::vector<float> outf, lsef;
    blocks_forward(outf, lsef, cast<float>(q), cast<float>(k), cast<float>(v), d, causal);
    EXPECT_LT(max_abs_diff(outf, want), 1e-5);
  }
}

TEST(RingAttention, BlockBackwardSummedOverBlocksMatchesFiniteDifferencesAndAccumulates) {
  const Dims d;
  for (bool causal : {true, false}) {
    auto q = randn(std::size_t(d.B * d.T * d.ldq()), 21), k = randn(std::size_t(d.B * d.T * d.ldkv()), 22),
         v = randn(std::size_t(d.B * d.T * d.ldkv()), 23);
    const auto r = randn(std::size_t(d.B * d.T * d.ldq()), 24);  // dL/dout
    std::vector<double> out, lse;
    blocks_forward(out, lse, q, k, v, d, causal);
    const auto gq0 = randn(q.size(), 25), gk0 = randn(k.size(), 26), gv0 = randn(v.size(), 27);
    auto gq = gq0, gk = gk0, gv = gv0;
    std::vector<double> work(std::size_t(block_attention_work_elems(d.T, d.T, d.HS)));
    for (int rep = 0; rep < 2; ++rep)
      for (const Cut& c : cuts())
        block_attention_backward(gq.data() + c.q0 * d.ldq(), gk.data() + c.k0 * d.ldkv(),
                                 gv.data() + c.k0 * d.ldkv(), work.data(), r.data() + c.q0 * d.ldq(),
                                 out.data() + c.q0 * d.ldq(), lse.data() + c.q0 * d.NH,
                                 q.data() + c.q0 * d.ldq(), k.data() + c.k0 * d.ldkv(),
                                 v.data() + c.k0 * d.ldkv(), shape_of(d, c, causal));
    auto loss = [&] {
      std::vector<double> o, l;
      blocks_forward(o, l, q, k, v, d, causal);
      return dot(r, o);
    };
    expect_matches_fd(causal ? "dq causal" : "dq", q, once(gq, gq0), loss);
    expect_matches_fd(causal ? "dk causal" : "dk", k, once(gk, gk0), loss);
    expect_matches_fd(causal ? "dv causal" : "dv", v, once(gv, gv0), loss);
  }
}

TEST(RingAttention, BlockThatNoQuerySeesIsSkipped) {
  const Dims d;
  const auto q = randn(std::size_t(d.B * d.T * d.ldq()), 31),
             k = randn(std::size_t(d.B * d.T * d.ldkv()), 32);
  std::vector<double> out(q.size(), 0.5), lse(std::size_t(d.B * d.T * d.NH), 0.25), dq(q.size(), 0.0),
      dk(k.size(), 0.0), dv(k.size(), 0.0), work(std::size_t(block_attention_work_elems(d.T, d.T, d.HS)));
  const Cut c{0, 4, 6, 6};  // keys at 6..11 after queries at 0..3
  const BlockAttentionShape s = shape_of(d, c, true);
  block_attention_forward(out.data(), lse.data(), work.data(), q.data(), k.data(), k.data(), s);
  block_attention_backward(dq.data(), dk.data(), dv.data(), work.data(), q.data(), out.data(), lse.data(),
                           q.data(), k.data(), k.data(), s);
  EXPECT_EQ(max_abs(dq) + max_abs(dk) + max_abs(dv), 0.0);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](double x) { return x == 0.5; }));
  EXPECT_TRUE(std::all_of(lse.begin(), lse.end(), [](double x) { return x == 0.25; }));
}
