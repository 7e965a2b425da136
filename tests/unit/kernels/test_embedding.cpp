#include <gtest/gtest.h>

#include "kernel_test_util.hpp"
#include "strata/kernels/cpu/embedding.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

// This rank holds vocabulary rows [vocab_start, vocab_start + V_local) = [4, 9) of 12.
// C = 70 > 64 so the column-blocked backward has a ragged second block.
constexpr index_t kN = 8, kC = 70, kStart = 4, kVLocal = 5;
const std::vector<std::int32_t> kTokens = {4, 8, 0, 6, 9, 6, 11, 4};  // 0, 9, 11 are elsewhere

TEST(Embedding, ForwardGathersOwnRowsAndZeroesOutOfRangeTokens) {
  const auto wte = randn(kVLocal * kC, 1);
  std::vector<double> out(kN * kC, 7.0);
  embedding_forward(out.data(), kTokens.data(), wte.data(), kN, kC, kStart, kVLocal);
  for (index_t n = 0; n < kN; ++n) {
    const index_t row = kTokens[n] - kStart;
    const bool mine = row >= 0 && row < kVLocal;
    for (index_t c = 0; c < kC; ++c)
      ASSERT_EQ(out[n * kC + c], mine ? wte[row * kC + c] : 0.0) << n << "," << c;
  }
}

TEST(Embedding, BackwardScatterAddsRepeatedTokensIgnoresOthersAndMatchesFiniteDifferences) {
  auto wte = randn(kVLocal * kC, 2);
  const auto r = randn(kN * kC, 3);
  const auto g0 = randn(wte.size(), 4);
  auto g = g0;
  for (int rep = 0; rep < 2; ++rep)
    embedding_backward(g.data(), r.data(), kTokens.data(), kN, kC, kStart, kVLocal);
  // Plain-loop reference: tokens 4 and 6 appear twice, 5 and 7 never (zero gradient rows).
  std::vector<double> ref(wte.size(), 0.0);
  for (index_t n = 0; n < kN; ++n) {
    const index_t row = kTokens[n] - kStart;
    if (row < 0 || row >= kVLocal) continue;
    for (index_t c = 0; c < kC; ++c) ref[row * kC + c] += r[n * kC + c];
  }
  EXPECT_LT(max_abs_diff(once(g, g0), ref), 1e-12);
  expect_matches_fd("dwte", wte, once(g, g0), [&] {
    std::vector<double> out(kN * kC);
    embedding_forward(out.data(), kTokens.data(), wte.data(), kN, kC, kStart, kVLocal);
    return dot(r, out);
  });
}

TEST(PositionEmbedding, ForwardAddsRowsAndBackwardSumsOverBatchMatchingFiniteDifferences) {
  const index_t B = 3, T = 4, maxT = 6, C = 70;
  auto wpe = randn(maxT * C, 5);
  const auto x = randn(B * T * C, 6);
  auto out = x;
  position_embedding_forward(out.data(), wpe.data(), B, T, C);
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t)
      for (index_t c = 0; c < C; ++c)
        ASSERT_EQ(out[(b * T + t) * C + c], x[(b * T + t) * C + c] + wpe[t * C + c]);
  const auto r = randn(B * T * C, 7), g0 = randn(wpe.size(), 8);
  auto g = g0;
  for (int rep = 0; rep < 2; ++rep) position_embedding_backward(g.data(), r.data(), B, T, C);
  expect_matches_fd("dwpe", wpe, once(g, g0), [&] {
    auto y = x;
    position_embedding_forward(y.data(), wpe.data(), B, T, C);
    return dot(r, y);
  });
}

TEST(Embedding, FloatForwardEqualsDouble) {
  const auto wte = randn(kVLocal * kC, 9);
  const auto wf = cast<float>(wte);
  std::vector<float> of(kN * kC);
  std::vector<double> od(kN * kC);
  embedding_forward(of.data(), kTokens.data(), wf.data(), kN, kC, kStart, kVLocal);
  embedding_forward(od.data(), kTokens.data(), wte.data(), kN, kC, kStart, kVLocal);
  EXPECT_LT(max_abs_diff(of, od), 1e-6);  // a copy: only the float rounding of wte
}
