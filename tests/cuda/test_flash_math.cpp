// Host tests of the fused attention's scalar logic (include/strata/kernels/cuda/flash_math.hpp):
// the block ranges the kernels visit, the mask, and the online-softmax updates and merges.
// These need no GPU (plain ::testing::Test, not CudaTest), so they run on every machine
// where the cuda suite is compiled. The emulation below replays the forward kernel's loop
// for one (b, h): 64-key blocks, two lanes per row over alternate columns, P rounded to bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuda_test_util.hpp"
#include "strata/kernels/cpu/ring_attention.hpp"
#include "strata/kernels/cuda/attention.hpp"
#include "strata/kernels/cuda/flash_math.hpp"

namespace flash = strata::kernels::cuda::flash;
using strata::test::bf16_round;

namespace {

// out[t, :] and lse[t] the way flash_forward_kernel computes them for one head.
void emulate_forward(const std::vector<float>& S, const std::vector<float>& V, int T, int HS, bool causal,
                     std::vector<double>& out, std::vector<double>& lse) {
  const float scale_log2 = float(1.0 / std::sqrt(double(HS))) * flash::kLog2e;
  out.assign(std::size_t(T) * HS, 0.0);
  lse.assign(T, 0.0);
  const int n_qb = flash::num_blocks(T, flash::kBlockM);
  for (int qb = 0; qb < n_qb; ++qb) {
    for (int row = 0; row < flash::kBlockM; ++row) {
      const std::int64_t t = std::int64_t(qb) * flash::kBlockM + row;
      flash::RowState st = flash::row_state_init();
      std::vector<float> o(HS, 0.0f);
      for (int j = 0; j < flash::kv_blocks_for_q_block(qb, T, causal); ++j) {
        const std::int64_t k0 = std::int64_t(j) * flash::kBlockN;
        float s2[flash::kBlockN];
        bool visible[flash::kBlockN];
        float lane_max[2] = {flash::neg_inf(), flash::neg_inf()};
        for (int c = 0; c < flash::kBlockN; ++c) {
          visible[c] = flash::key_visible(t, k0 + c, T, causal);
          s2[c] = visible[c] ? S[t * T + k0 + c] * scale_log2 : 0.0f;
          if (visible[c]) lane_max[c % 2] = std::fmax(lane_max[c % 2], s2[c]);
        }
        const float alpha = flash::row_begin_block(st, std::fmax(lane_max[0], lane_max[1]));
        float lane_sum[2] = {0.0f, 0.0f};
        for (auto& x : o) x *= alpha;
        for (int c = 0; c < flash::kBlockN; ++c) {
          const float p = visible[c] ? flash::exp2_shifted(s2[c], st.m2) : 0.0f;
          lane_sum[c % 2] += p;
          if (p != 0.0f)
            for (int d = 0; d < HS; ++d) o[d] += bf16_round(p) * V[(k0 + c) * HS + d];
        }
        flash::row_add_sum(st, lane_sum[0] + lane_sum[1]);
      }
      if (t >= T) continue;
      const float inv = flash::row_inv_sum(st);
      for (int d = 0; d < HS; ++d) out[t * HS + d] = o[d] * inv;
      lse[t] = flash::row_lse(st);
    }
  }
}

}  // namespace

TEST(FlashMath, BlockRangesVisitEveryVisiblePairAndSkipOnlyMaskedBlocks) {
  for (int T : {1, 2, 63, 64, 65, 100, 128, 200}) {
    for (bool causal : {false, true}) {
      const int n = flash::num_blocks(T, flash::kBlockM);
      for (int qb = 0; qb < n; ++qb) {
        const int visited = flash::kv_blocks_for_q_block(qb, T, causal);
        ASSERT_LE(visited, n);
        for (int kb = 0; kb < n; ++kb) {
          bool any_visible = false;
          for (int r = 0; r < flash::kBlockM; ++r)
            for (int c = 0; c < flash::kBlockN; ++c)
              any_visible |= flash::key_visible(qb * flash::kBlockM + r, kb * flash::kBlockN + c, T, causal);
          // the forward visits key block kb of query block qb exactly when it has a visible pair
          EXPECT_EQ(kb < visited, any_visible)
              << "T " << T << " causal " << causal << " q " << qb << " kv " << kb;
          // the backward's range over query blocks for key block kb agrees
          EXPECT_EQ(qb >= flash::q_block_begin_for_kv_block(kb, causal), any_visible)
              << "T " << T << " causal " << causal << " q " << qb << " kv " << kb;
        }
      }
    }
  }
}

TEST(FlashMath, BlockRangesWithPositionOffsetsVisitEveryVisiblePair) {
  // Ring attention's blocks: Tq query rows at q_pos.., Tk keys at k_pos.. (flash::BlockSpan).
  for (std::int64_t Tq : {1, 40, 64, 130})
    for (std::int64_t Tk : {1, 64, 100})
      for (std::int64_t q_pos : {0, 30, 64, 200})
        for (std::int64_t k_pos : {0, 50, 64, 128, 300})
          for (bool causal : {false, true}) {
            const flash::BlockSpan s{Tq, Tk, q_pos, k_pos, causal};
            const int nq = flash::num_blocks(Tq, flash::kBlockM), nk = flash::num_blocks(Tk, flash::kBlockN);
            for (int qb = 0; qb < nq; ++qb)
              for (int kb = 0; kb < nk; ++kb) {
                bool any_visible = false;
                for (int r = 0; r < flash::kBlockM; ++r)
                  for (int c = 0; c < flash::kBlockN; ++c) {
                    const std::int64_t t = std::int64_t(qb) * flash::kBlockM + r,
                                       u = std::int64_t(kb) * flash::kBlockN + c;
                    const bool v = flash::key_visible(s, t, u);
                    EXPECT_EQ(v, t < Tq && u < Tk && (!causal || k_pos + u <= q_pos + t));
                    any_visible |= v;
                  }
                EXPECT_EQ(kb < flash::kv_blocks_for_q_block(s, qb), any_visible)
                    << "Tq " << Tq << " Tk " << Tk << " q_pos " << q_pos << " k_pos " << k_pos << " q " << qb
                    << " kv " << kb;
                EXPECT_EQ(qb >= flash::q_block_begin_for_kv_block(s, kb), any_visible)
                    << "Tq " << Tq << " Tk " << Tk << " q_pos " << q_pos << " k_pos " << k_pos << " q " << qb
                    << " kv " << kb;
              }
          }
}

TEST(FlashMath, ARowContinuesFromItsSavedLogSumExp) {
  // State from (out, lse) = one earlier key with score s0: l = 1 at m = s0; adding a key of
  // score s1 gives the log-sum-exp of both.
  const float s0 = 0.7f, s1 = -0.4f;
  flash::RowState st = flash::row_state_from_lse(s0);
  const float s1_2 = s1 * flash::kLog2e;
  const float alpha = flash::row_begin_block(st, s1_2);
  EXPECT_FLOAT_EQ(alpha, 1.0f);  // the maximum stays s0
  flash::row_add_sum(st, flash::exp2_shifted(s1_2, st.m2));
  EXPECT_NEAR(flash::row_lse(st), std::log(std::exp(s0) + std::exp(s1)), 1e-6);
  const flash::RowState empty = flash::row_state_from_lse(flash::neg_inf());
  EXPECT_EQ(empty.l, 0.0f);
  EXPECT_EQ(empty.m2, flash::neg_inf());
}

TEST(FlashMath, MaskIsCausalAndBoundedByT) {
  EXPECT_TRUE(flash::key_visible(5, 5, 10, true));
  EXPECT_FALSE(flash::key_visible(5, 6, 10, true));
  EXPECT_TRUE(flash::key_visible(5, 6, 10, false));
  EXPECT_FALSE(flash::key_visible(5, 10, 10, false));
  EXPECT_FALSE(flash::key_visible(10, 0, 10, false));
}

TEST(FlashMath, EmptyRowsStayFiniteAndZero) {
  flash::RowState st = flash::row_state_init();
  const float alpha = flash::row_begin_block(st, flash::neg_inf());  // a block with every key masked
  EXPECT_EQ(alpha, 0.0f);
  EXPECT_EQ(flash::exp2_shifted(flash::neg_inf(), st.m2), 0.0f);
  EXPECT_EQ(flash::row_inv_sum(st), 0.0f);
  EXPECT_EQ(flash::row_lse(st), flash::neg_inf());
  EXPECT_EQ(flash::prob_from_lse(1.0f, flash::neg_inf()), 0.0f);
  // then a visible key: the state becomes that key's alone
  flash::row_begin_block(st, 3.0f);
  flash::row_add_sum(st, flash::exp2_shifted(3.0f, st.m2));
  EXPECT_FLOAT_EQ(flash::row_lse(st), 3.0f * flash::kLn2);
}

TEST(FlashMath, MergeOfPartialStatesEqualsTheWholeRow) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  std::vector<float> s2(100);
  for (auto& x : s2) x = nd(rng);
  double mx = -1e300, sum = 0;
  for (float x : s2) mx = std::max(mx, double(x));
  for (float x : s2) sum += std::exp2(double(x) - mx);
  const double lse = (mx + std::log2(sum)) * std::log(2.0);
  auto partial = [&](int lo, int hi) {
    flash::RowState st = flash::row_state_init();
    float m = flash::neg_inf();
    for (int i = lo; i < hi; ++i) m = std::fmax(m, s2[i]);
    flash::row_begin_block(st, m);
    float l = 0;
    for (int i = lo; i < hi; ++i) l += flash::exp2_shifted(s2[i], st.m2);
    flash::row_add_sum(st, l);
    return st;
  };
  const auto merged = flash::row_merge(flash::row_merge(partial(0, 30), partial(30, 31)), partial(31, 100));
  // fp32 sums of 100 terms: relative error ~1e-6
  EXPECT_NEAR(flash::row_lse(merged), lse, 1e-5 * std::abs(lse) + 1e-5);
  const auto with_empty = flash::row_merge(partial(0, 100), flash::row_state_init());
  EXPECT_NEAR(flash::row_lse(with_empty), lse, 1e-5 * std::abs(lse) + 1e-5);
  // the backward's probabilities from the lse sum to one
  double total = 0;
  for (float x : s2) total += flash::prob_from_lse(x, float(lse));  // x is already in base 2
  EXPECT_NEAR(total, 1.0, 1e-5);
}

TEST(FlashMath, EmulatedForwardMatchesSoftmaxInDouble) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int T : {1, 64, 100, 150}) {
    for (bool causal : {false, true}) {
      const int HS = 64;
      // raw scores q.k (scaled by 1/sqrt(64) = 1/8 inside): standard deviation 2.5 after scaling
      std::vector<float> S(std::size_t(T) * T), V(std::size_t(T) * HS);
      for (auto& x : S) x = 20.0f * nd(rng);
      for (auto& x : V) x = bf16_round(nd(rng));
      std::vector<double> out, lse;
      emulate_forward(S, V, T, HS, causal, out, lse);
      for (int t = 0; t < T; ++t) {
        const int len = causal ? t + 1 : T;
        double mx = -1e300, sum = 0;
        for (int u = 0; u < len; ++u) mx = std::max(mx, S[t * T + u] / 8.0);
        for (int u = 0; u < len; ++u) sum += std::exp(S[t * T + u] / 8.0 - mx);
        EXPECT_NEAR(lse[t], mx + std::log(sum), 1e-4 * (1 + std::abs(mx))) << "T " << T << " t " << t;
        for (int d = 0; d < HS; ++d) {
          double want = 0;
          for (int u = 0; u < len; ++u) want += std::exp(S[t * T + u] / 8.0 - mx) / sum * V[u * HS + d];
          // P rounded to bf16 (relative 2^-9) in a convex combination of |v| <~ 4: <= 0.01
          ASSERT_NEAR(out[t * HS + d], want, 1e-2)
              << "T " << T << " causal " << causal << " t " << t << " d " << d;
        }
      }
    }
  }
}

// The forward kernel's loop for one head of a ring-attention block (merge mode): the running
// (out, lse) as the starting state, the key tiles of kv_blocks_for_q_block, P rounded to bf16,
// rows that see no key left alone. Against the CPU block kernel in fp32: the state
// continuation and the tile ranges of the GPU kernel are the CPU kernel's merge.
namespace {
void emulate_block_forward(const flash::BlockSpan& s, int HS, const std::vector<float>& q,
                           const std::vector<float>& k, const std::vector<float>& v, std::vector<float>& out,
                           std::vector<float>& lse) {
  const float scale_log2 = float(1.0 / std::sqrt(double(HS))) * flash::kLog2e;
  for (int qb = 0; qb < flash::num_blocks(s.Tq, flash::kBlockM); ++qb) {
    const int n_kv = flash::kv_blocks_for_q_block(s, qb);
    if (n_kv == 0) continue;  // the kernel's early return
    for (int row = 0; row < flash::kBlockM; ++row) {
      const std::int64_t t = std::int64_t(qb) * flash::kBlockM + row;
      if (t >= s.Tq) break;
      flash::RowState st = flash::row_state_from_lse(lse[std::size_t(t)]);
      std::vector<float> o(std::size_t(HS), 0.0f);
      if (lse[std::size_t(t)] != flash::neg_inf())
        for (int d = 0; d < HS; ++d) o[std::size_t(d)] = out[std::size_t(t * HS + d)];
      bool seen = false;
      for (int j = 0; j < n_kv; ++j) {
        const std::int64_t k0 = std::int64_t(j) * flash::kBlockN;
        float s2[flash::kBlockN];
        float mx = flash::neg_inf();
        for (int c = 0; c < flash::kBlockN; ++c) {
          if (!flash::key_visible(s, t, k0 + c)) continue;
          float dot = 0.0f;
          for (int d = 0; d < HS; ++d) dot += q[std::size_t(t * HS + d)] * k[std::size_t((k0 + c) * HS + d)];
          s2[c] = dot * scale_log2;
          mx = std::fmax(mx, s2[c]);
        }
        seen |= mx != flash::neg_inf();
        const float alpha = flash::row_begin_block(st, mx);
        for (auto& x : o) x *= alpha;
        float sum = 0.0f;
        for (int c = 0; c < flash::kBlockN; ++c) {
          if (!flash::key_visible(s, t, k0 + c)) continue;
          const float p = flash::exp2_shifted(s2[c], st.m2);
          sum += p;
          for (int d = 0; d < HS; ++d) o[std::size_t(d)] += bf16_round(p) * v[std::size_t((k0 + c) * HS + d)];
        }
        flash::row_add_sum(st, sum);
      }
      if (!seen) continue;
      const float inv = flash::row_inv_sum(st);
      for (int d = 0; d < HS; ++d) out[std::size_t(t * HS + d)] = bf16_round(o[std::size_t(d)] * inv);
      lse[std::size_t(t)] = flash::row_lse(st);
    }
  }
}
}  // namespace

TEST(FlashMath, EmulatedBlockForwardMergesAsTheCpuBlockKernel) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int HS = 64;
  struct Span {
    std::int64_t Tq, Tk, q_pos, k_pos;
    bool causal;
  };
  for (const Span& sp : {Span{100, 100, 0, 0, true}, Span{70, 130, 200, 0, true}, Span{64, 64, 32, 64, true},
                         Span{130, 40, 0, 60, true}, Span{50, 50, 0, 100, true}, Span{30, 90, 500, 0, false},
                         Span{200, 150, 150, 100, true}}) {
    const flash::BlockSpan s{sp.Tq, sp.Tk, sp.q_pos, sp.k_pos, sp.causal};
    std::vector<float> q(std::size_t(sp.Tq * HS)), k(std::size_t(sp.Tk * HS)), v(std::size_t(sp.Tk * HS));
    for (auto& x : q) x = bf16_round(2.0f * nd(rng));
    for (auto& x : k) x = bf16_round(nd(rng));
    for (auto& x : v) x = bf16_round(nd(rng));
    // An earlier block's (out, lse); every 5th row empty (lse = -inf, out = 0).
    std::vector<float> out0(std::size_t(sp.Tq * HS)), lse0(std::size_t(sp.Tq));
    for (auto& x : out0) x = bf16_round(nd(rng));
    for (std::int64_t t = 0; t < sp.Tq; ++t) {
      lse0[std::size_t(t)] = 2.0f + nd(rng);
      if (t % 5 == 0) {
        lse0[std::size_t(t)] = flash::neg_inf();
        for (int d = 0; d < HS; ++d) out0[std::size_t(t * HS + d)] = 0.0f;
      }
    }
    std::vector<float> want_out = out0, want_lse = lse0;
    const strata::kernels::cpu::BlockAttentionShape shape{1,          sp.Tq, sp.Tk,    1,          1,
                                                          HS,         HS,    HS,       sp.Tq * HS, sp.Tk * HS,
                                                          sp.Tq * HS, sp.Tq, sp.q_pos, sp.k_pos,   sp.causal};
    std::vector<float> work(std::size_t(strata::kernels::cpu::block_attention_work_elems(sp.Tq, sp.Tk, HS)));
    strata::kernels::cpu::block_attention_forward<float>(want_out.data(), want_lse.data(), work.data(),
                                                         q.data(), k.data(), v.data(), shape);
    std::vector<float> got_out = out0, got_lse = lse0;
    emulate_block_forward(s, HS, q, k, v, got_out, got_lse);
    for (std::int64_t t = 0; t < sp.Tq; ++t) {
      SCOPED_TRACE(::testing::Message() << "Tq " << sp.Tq << " Tk " << sp.Tk << " q_pos " << sp.q_pos
                                        << " k_pos " << sp.k_pos << " t " << t);
      if (std::isinf(want_lse[std::size_t(t)])) {
        EXPECT_EQ(got_lse[std::size_t(t)], want_lse[std::size_t(t)]);
      } else {
        EXPECT_NEAR(got_lse[std::size_t(t)], want_lse[std::size_t(t)],
                    1e-4 * (1 + std::abs(want_lse[std::size_t(t)])));
      }
      const bool sees = !sp.causal || sp.q_pos + t >= sp.k_pos;
      if (!sees) {
        EXPECT_EQ(got_lse[std::size_t(t)], lse0[std::size_t(t)]);  // bit for bit
      }
      for (int d = 0; d < HS; ++d) {
        const std::size_t i = std::size_t(t * HS + d);
        // P and out rounded to bf16 (relative 2^-9 each) in convex combinations of |v| <~ 4
        ASSERT_NEAR(got_out[i], want_out[i], 2e-2) << "d " << d;
        if (!sees) {
          ASSERT_EQ(got_out[i], out0[i]);
        }
      }
    }
  }
}

// The host-side checks of the attention entry points need no device either.
TEST(FlashMath, ShapeChecksNameTheProblem) {
  namespace cuda = strata::kernels::cuda;
  const cuda::FlashShape ok{2, 100, 8, 2, 128, 8 * 128 + 8, 2 * 128 + 8, true};
  EXPECT_NO_THROW(cuda::check_flash_shape(ok));
  auto bad = ok;
  bad.HS = 96;
  EXPECT_THROW(cuda::check_flash_shape(bad), strata::Error);
  bad = ok;
  bad.NKV = 3;
  EXPECT_THROW(cuda::check_flash_shape(bad), strata::Error);
  bad = ok;
  bad.ld_q = 8 * 128 + 4;  // not a multiple of 8 elements
  EXPECT_THROW(cuda::check_flash_shape(bad), strata::Error);
  bad = ok;
  bad.ld_kv = 128;  // smaller than NKV HS
  EXPECT_THROW(cuda::check_flash_shape(bad), strata::Error);
  // work space: dq [B, T, NH, HS] and D [B, NH, T] in fp32
  EXPECT_EQ(cuda::attention_workspace_floats(ok), 2 * 100 * 8 * 128 + 2 * 8 * 100);
  // 4 B NH T^2 HS, halved when causal
  EXPECT_DOUBLE_EQ(cuda::attention_forward_flops(ok), 0.5 * 4.0 * 2 * 8 * 100 * 100 * 128);
}
