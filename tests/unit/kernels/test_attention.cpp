#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/attention.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// q, k, v live inside one fused buffer qkv[B, T, (NH + 2 NKV) HS + pad], as a fused QKV
// projection produces: q at column 0, k at NH HS, v at (NH + NKV) HS, row stride ld.
// GQA with NH = 4 query heads over NKV = 2 key/value heads.
struct Fused {
  index_t B, T, NH = 4, NKV = 2, HS, pad = 3;
  index_t ld() const { return (NH + 2 * NKV) * HS + pad; }
  index_t koff() const { return NH * HS; }
  index_t voff() const { return (NH + NKV) * HS; }
  AttentionShape shape(bool causal) const { return {B, T, NH, NKV, HS, ld(), ld(), causal}; }
};

// Explicit-loop reference: out[b, t, h, :] = sum_u softmax_u(q . k / sqrt(HS)) v.
static std::vector<double> attention_ref(const std::vector<double>& qkv, const Fused& f, bool causal) {
  const index_t ld = f.ld(), group = f.NH / f.NKV;
  std::vector<double> out(f.B * f.T * f.NH * f.HS, 0.0);
  for (index_t b = 0; b < f.B; ++b)
    for (index_t h = 0; h < f.NH; ++h)
      for (index_t t = 0; t < f.T; ++t) {
        const double* q = &qkv[(b * f.T + t) * ld + h * f.HS];
        const index_t kvh = h / group;
        const index_t len = causal ? t + 1 : f.T;
        std::vector<double> s(len);
        double mx = -1e300;
        for (index_t u = 0; u < len; ++u) {
          const double* k = &qkv[(b * f.T + u) * ld + f.koff() + kvh * f.HS];
          double d = 0;
          for (index_t i = 0; i < f.HS; ++i) d += q[i] * k[i];
          s[u] = d / std::sqrt(double(f.HS));
          mx = std::max(mx, s[u]);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        double* o = &out[((b * f.T + t) * f.NH + h) * f.HS];
        for (index_t u = 0; u < len; ++u) {
          const double* v = &qkv[(b * f.T + u) * ld + f.voff() + kvh * f.HS];
          for (index_t i = 0; i < f.HS; ++i) o[i] += s[u] / sum * v[i];
        }
      }
  return out;
}

template <class T>
static std::vector<T> run_forward(const std::vector<T>& qkv, const Fused& f, bool causal,
                                  std::vector<T>* att_out = nullptr) {
  std::vector<T> out(f.B * f.T * f.NH * f.HS), att(f.B * f.NH * f.T * f.T, T(-7));
  attention_forward(out.data(), att.data(), qkv.data(), qkv.data() + f.koff(), qkv.data() + f.voff(),
                    f.shape(causal));
  if (att_out) *att_out = att;
  return out;
}

// T = 70 > 64: the causal row blocking has a full and a ragged block.
TEST(Attention, ForwardMatchesLoopsForGqaCausalAndBidirectionalOnFusedQkvStrides) {
  const Fused f{2, 70, 4, 2, 8};
  const auto qkv = randn(f.B * f.T * f.ld(), 1, 1.5);
  for (bool causal : {true, false}) {
    std::vector<double> att;
    const auto out = run_forward(qkv, f, causal, &att);
    EXPECT_LT(max_abs_diff(out, attention_ref(qkv, f, causal)), 1e-13) << "causal " << causal;
    // Saved probabilities: rows sum to 1, exact zeros above the diagonal when causal.
    for (index_t r = 0; r < f.B * f.NH * f.T; ++r) {
      const index_t t = r % f.T;
      double s = 0;
      for (index_t u = 0; u < f.T; ++u) {
        s += att[r * f.T + u];
        if (causal && u > t) {
          ASSERT_EQ(att[r * f.T + u], 0.0);
        }
      }
      ASSERT_NEAR(s, 1.0, 1e-13);
    }
  }
}

TEST(Attention, FloatForwardAgreesWithDouble) {
  // Outputs are convex combinations of O(1) values: float rounding in the scores (|S| ~ 3),
  // the fast exp and the GEMMs stays below ~1e-5.
  const Fused f{1, 70, 4, 2, 16};
  const auto qkv = randn(f.B * f.T * f.ld(), 2);
  for (bool causal : {true, false}) {
    const auto od = run_forward(qkv, f, causal);
    const auto of = run_forward(cast<float>(qkv), f, causal);
    EXPECT_LT(max_abs_diff(of, od), 1e-5) << "causal " << causal;
  }
}

TEST(Attention, BackwardMatchesFiniteDifferencesForQKVAndAccumulates) {
  // T = 66 crosses the 64-row block boundary; dq/dk/dv share the fused layout of q/k/v
  // (one dQKV buffer), and the two query heads of each KV group add into one dk/dv head.
  const Fused f{1, 66, 4, 2, 3};
  for (bool causal : {true, false}) {
    auto qkv = randn(f.B * f.T * f.ld(), 3 + causal);
    const auto r = randn(f.B * f.T * f.NH * f.HS, 5);
    std::vector<double> att;
    run_forward(qkv, f, causal, &att);
    const auto g0 = randn(qkv.size(), 6);
    auto g = g0;
    std::vector<double> scratch(f.T * f.T);
    for (int rep = 0; rep < 2; ++rep)
      attention_backward(g.data(), g.data() + f.koff(), g.data() + f.voff(), scratch.data(), r.data(),
                         att.data(), qkv.data(), qkv.data() + f.koff(), qkv.data() + f.voff(),
                         f.shape(causal));
    const auto grad = once(g, g0);
    expect_matches_fd(causal ? "dqkv causal" : "dqkv bidirectional", qkv, grad,
                      [&] { return dot(r, run_forward(qkv, f, causal)); });
    // Padding columns of the fused buffer are not touched.
    for (index_t row = 0; row < f.B * f.T; ++row)
      for (index_t c = f.ld() - f.pad; c < f.ld(); ++c) ASSERT_EQ(g[row * f.ld() + c], g0[row * f.ld() + c]);
  }
}

TEST(Attention, RejectsHeadCountsThatDoNotGroup) {
  std::vector<float> buf(1000);
  AttentionShape s{1, 2, 3, 2, 4, 28, 28, true};
  EXPECT_THROW(attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), s),
               std::runtime_error);
}

// The KV-cache form: a prefill of 5 rows, then one row at a time (positions 5..69), against the
// reference over the whole sequence; q/k/v read from the fused buffer as the cache would hold
// them (the cache rows are the sequence's k/v rows). Bidirectional: one call from position 0.
TEST(Attention, CachedForwardOverPrefillThenSingleRowsMatchesReference) {
  const Fused f{1, 70, 4, 2, 8};
  const auto qkv = randn(f.T * f.ld(), 11, 1.5);
  for (bool causal : {true, false}) {
    const auto ref = attention_ref(qkv, f, causal);
    std::vector<double> out(f.T * f.NH * f.HS), scratch(f.T * f.T);
    const index_t o = f.NH * f.HS;
    std::vector<std::pair<index_t, index_t>> calls;  // (pos, Tq)
    if (causal) {
      calls.push_back({0, 5});
      for (index_t p = 5; p < f.T; ++p) calls.push_back({p, 1});
    } else {
      calls.push_back({0, f.T});
    }
    for (const auto& [pos, tq] : calls) {
      const CachedAttentionShape s{tq, pos, f.NH, f.NKV, f.HS, f.ld(), f.ld(), causal};
      attention_forward_cached(out.data() + pos * o, scratch.data(), qkv.data() + pos * f.ld(),
                               qkv.data() + f.koff(), qkv.data() + f.voff(), s);
    }
    EXPECT_LT(max_abs_diff(out, ref), 1e-13) << "causal " << causal;
  }
}
