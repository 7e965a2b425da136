// The threaded CPU kernels give the same results on 2 (and 3) kernel threads as on 1, on
// shapes large enough to run in parallel (kernels/cpu/detail.hpp: loops of >= 2^18 elements
// of work). Each output element is computed by one thread in a fixed order, and reductions
// add per-block partial sums in block order, so the element-wise kernels, norms,
// cross-entropy, embeddings, AdamW and the gradient norm are BITWISE equal whatever the
// thread count; attention splits its heads over threads (each head's math is unchanged) and
// is bitwise equal too when T >= 64 x threads. The 1-thread results are checked against
// plain loops by the other kernel tests, so together these check the threaded paths.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "../../../src/kernels/cpu/detail.hpp"  // for_each's thread use (the file is built with OpenMP)
#include "kernel_test_util.hpp"
#include "strata/config.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/embedding.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/norm.hpp"
#include "strata/kernels/cpu/rope.hpp"

using namespace strata::kernels::cpu;
using namespace strata::kernels::cpu::test;

namespace {

// Runs `body` with the kernel (and BLAS) threads set to `threads`, then restores 1.
void with_threads(int threads, const std::function<void()>& body) {
  set_blas_threads(threads);
  body();
  set_blas_threads(1);
}

std::vector<float> randf(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  return cast<float>(randn(n, seed, scale));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : 1e300;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The outputs of `run` (which fills the vectors it is given) on 1 thread and on `threads`.
void expect_same_on_threads(const char* what, int nout,
                            const std::function<void(std::vector<std::vector<float>>&)>& run) {
  std::vector<std::vector<float>> one(nout), many(nout);
  with_threads(1, [&] { run(one); });
  for (int threads : {2, 3}) {
    with_threads(threads, [&] { run(many); });
    for (int i = 0; i < nout; ++i)
      EXPECT_TRUE(bitwise_equal(one[i], many[i]))
          << what << ": output " << i << " differs on " << threads << " threads (max |diff| "
          << max_diff(one[i], many[i]) << ")";
  }
}

constexpr index_t N = 384, C = 1024, F = 4096, V = 5000;

}  // namespace

TEST(Threading, KernelsAreBuiltWithOpenMPWhereKokkosIsSerial) {
  // The build reports whether the kernels are threaded; where they are not, the tests below
  // still pass (1 thread everywhere) and this says so.
  if (!strata::build::have_openmp) GTEST_SKIP() << "built without OpenMP (STRATA_OPENMP=OFF)";
  SUCCEED();
}

TEST(Threading, LoopsAboveTheThresholdRunOnTheKernelThreadsAndSmallOnesOnTheCaller) {
#if defined(_OPENMP)
  if (!detail::kUseOpenMP) GTEST_SKIP() << "Kokkos' host backend is threaded: the loops are Kokkos loops";
  std::vector<int> big(64, -1), small(64, -1);
  with_threads(2, [&] {
    int* b = big.data();
    int* sm = small.data();
    detail::for_each(
        "test::big", 64, [=](index_t i) { b[i] = omp_get_thread_num(); }, detail::kMinParallelWork / 32);
    detail::for_each(
        "test::small", 64, [=](index_t i) { sm[i] = omp_get_thread_num(); }, 16);
  });
  // static schedule: the first half on thread 0, the second on thread 1
  EXPECT_EQ(big.front(), 0);
  EXPECT_EQ(big.back(), 1);
  EXPECT_EQ(*std::max_element(small.begin(), small.end()), 0);
#else
  GTEST_SKIP() << "this test file is built without OpenMP";
#endif
}

TEST(Threading, ElementwiseKernelsAndGradientNormAreBitwiseEqualOnAnyThreadCount) {
  const auto a = randf(N * F, 1), b = randf(N * F, 2);
  expect_same_on_threads("elementwise", 5, [&](auto& out) {
    out[0] = a;
    accumulate(out[0].data(), b.data(), index_t(a.size()));
    scale(out[0].data(), 0.5f, index_t(a.size()));
    out[1].assign(a.size(), 0.f);
    add(out[1].data(), a.data(), b.data(), index_t(a.size()));
    out[2].assign(a.size(), 0.f);
    copy(out[2].data(), a.data(), index_t(a.size()));
    fill(out[2].data() + 7, 3.0f, index_t(a.size()) - 9);
    out[3] = a;
    add_bias(out[3].data(), b.data(), N, F);
    out[4] = {float(sum_squares(a.data(), index_t(a.size()))), float(sum_squares(b.data(), 100001))};
  });
}

TEST(Threading, ActivationsAreBitwiseEqualOnAnyThreadCount) {
  const auto x = randf(N * F, 3), u = randf(N * F, 4), dy = randf(N * F, 5);
  expect_same_on_threads("activations", 6, [&](auto& out) {
    for (auto& o : out) o.assign(x.size(), 0.5f);
    gelu_forward(out[0].data(), x.data(), index_t(x.size()));
    gelu_backward(out[1].data(), dy.data(), x.data(), index_t(x.size()));
    swiglu_forward(out[2].data(), x.data(), u.data(), index_t(x.size()));
    swiglu_backward(out[3].data(), out[4].data(), dy.data(), x.data(), u.data(), index_t(x.size()));
    out[5] = x;
    rope_forward(out[5].data(), 4, N / 4, 32, 128, 10000.0);
    rope_backward(out[5].data(), 4, N / 4, 64, 64, 10000.0, 3);
  });
}

TEST(Threading, NormsAreBitwiseEqualOnAnyThreadCount) {
  const auto x = randf(N * C, 6), w = randf(C, 7), bias = randf(C, 8), dy = randf(N * C, 9);
  expect_same_on_threads("norms", 9, [&](auto& out) {
    out[0].assign(N * C, 0.f), out[1].assign(N, 0.f), out[2].assign(N, 0.f);
    layernorm_forward(out[0].data(), out[1].data(), out[2].data(), x.data(), w.data(), bias.data(), N, C,
                      1e-5f);
    out[3].assign(N * C, 0.25f), out[4].assign(C, 0.5f), out[5].assign(C, 0.75f);
    layernorm_backward(out[3].data(), out[4].data(), out[5].data(), dy.data(), x.data(), w.data(),
                       out[1].data(), out[2].data(), N, C);
    out[6].assign(N * C, 0.f), out[7].assign(N, 0.f);
    rmsnorm_forward(out[6].data(), out[7].data(), x.data(), w.data(), N, C, 1e-5f);
    out[8].assign(N * C + C, 0.125f);
    rmsnorm_backward(out[8].data(), out[8].data() + N * C, dy.data(), x.data(), w.data(), out[7].data(), N,
                     C);
  });
}

TEST(Threading, CrossEntropyIsBitwiseEqualOnAnyThreadCount) {
  const index_t ld = V + 3;
  const auto logits = randf(N * ld, 10, 3.0);
  std::vector<std::int32_t> targets(N);
  for (index_t n = 0; n < N; ++n) targets[n] = n % 7 == 3 ? -1 : std::int32_t((n * 977) % V);
  const auto dl = randf(N, 11);
  expect_same_on_threads("cross-entropy", 5, [&](auto& out) {
    out[0].assign(N, 0.f);
    cross_entropy_forward(out[0].data(), logits.data(), targets.data(), N, V, ld);
    out[1].assign(N * ld, 0.5f);
    cross_entropy_backward(out[1].data(), logits.data(), targets.data(), dl.data(), N, V, ld);
    out[2] = logits;
    out[3].assign(N, 0.f);
    cross_entropy_fused(out[2].data(), out[3].data(), targets.data(), 0.125f, N, V, ld);
    // vocab-parallel pieces on a slice [1000, 1000 + V - 7) of a larger vocabulary
    std::vector<float> mx(N), se(N), xt(N);
    vocab_parallel_ce_max(mx.data(), logits.data(), N, V - 7, ld);
    vocab_parallel_ce_sumexp(se.data(), xt.data(), logits.data(), mx.data(), targets.data(), N, V - 7, ld,
                             1000);
    out[4] = logits;
    std::vector<float> loss(N);
    vocab_parallel_ce_finish(out[4].data(), loss.data(), mx.data(), se.data(), xt.data(), targets.data(),
                             0.5f, true, N, V - 7, ld, 1000);
    out[4].insert(out[4].end(), loss.begin(), loss.end());
  });
}

TEST(Threading, EmbeddingsAndLinearBiasAreBitwiseEqualOnAnyThreadCount) {
  const index_t Vl = 300, B = 4, Tn = N / 4;
  const auto wte = randf(Vl * C, 12), wpe = randf(Tn * C, 13), dy = randf(N * C, 14);
  std::vector<std::int32_t> tok(N);
  for (index_t n = 0; n < N; ++n) tok[n] = std::int32_t((n * 37) % (Vl + 50));  // some out of range
  expect_same_on_threads("embeddings", 4, [&](auto& out) {
    out[0].assign(N * C, 0.f);
    embedding_forward(out[0].data(), tok.data(), wte.data(), N, C, 20, Vl);
    position_embedding_forward(out[0].data(), wpe.data(), B, Tn, C);
    out[1].assign(Vl * C, 0.5f);
    embedding_backward(out[1].data(), dy.data(), tok.data(), N, C, 20, Vl);
    out[2].assign(Tn * C, 0.25f);
    position_embedding_backward(out[2].data(), dy.data(), B, Tn, C);
    out[3].assign(C, 1.0f);
    linear_backward(static_cast<float*>(nullptr), static_cast<float*>(nullptr), out[3].data(), dy.data(),
                    static_cast<const float*>(nullptr), static_cast<const float*>(nullptr), N, 0, C);
  });
}

TEST(Threading, AdamWIsBitwiseEqualOnAnyThreadCount) {
  const index_t n = 300007;
  const auto p0 = randf(n, 15), g = randf(n, 16), m0 = randf(n, 17, 0.1);
  auto v0 = randf(n, 18, 0.1);
  for (auto& x : v0) x = x * x;
  expect_same_on_threads("adamw", 3, [&](auto& out) {
    out[0] = p0, out[1] = m0, out[2] = v0;
    adamw_update(out[0].data(), g.data(), out[1].data(), out[2].data(), n,
                 {1e-3, 0.9, 0.95, 1e-8, 0.1, 0.7, 3});
  });
}

TEST(Threading, AttentionIsBitwiseEqualOnAnyThreadCountForLongSequences) {
  // B 2, T 192 (>= 64 x 3 threads), 4 query heads over 2 KV heads, fused QKV strides.
  const index_t B = 2, Tn = 192, NH = 4, NKV = 2, HS = 32, ld = (NH + 2 * NKV) * HS;
  const auto qkv = randf(B * Tn * ld, 19), dout = randf(B * Tn * NH * HS, 20);
  for (bool causal : {true, false}) {
    const AttentionShape s{B, Tn, NH, NKV, HS, ld, ld, causal};
    expect_same_on_threads(causal ? "attention causal" : "attention bidirectional", 3, [&](auto& out) {
      out[0].assign(B * Tn * NH * HS, 0.f);
      std::vector<float> att(B * NH * Tn * Tn), scratch(Tn * Tn);
      attention_forward(out[0].data(), att.data(), qkv.data(), qkv.data() + NH * HS,
                        qkv.data() + (NH + NKV) * HS, s);
      out[1] = att;
      out[2].assign(B * Tn * ld, 0.125f);
      float* d = out[2].data();
      attention_backward(d, d + NH * HS, d + (NH + NKV) * HS, scratch.data(), dout.data(), att.data(),
                         qkv.data(), qkv.data() + NH * HS, qkv.data() + (NH + NKV) * HS, s);
    });
  }
}

TEST(Threading, AttentionOnShortSequencesMatchesOneThreadToRounding) {
  // T 40 < 64 x threads: the backward's row blocks shrink to fit each worker's share of the
  // T x T scratch, which regroups the sums of dK and dQ (float rounding only).
  const index_t B = 3, Tn = 40, NH = 2, NKV = 1, HS = 16, ld = (NH + 2 * NKV) * HS;
  const auto qkv = randf(B * Tn * ld, 21), dout = randf(B * Tn * NH * HS, 22);
  const AttentionShape s{B, Tn, NH, NKV, HS, ld, ld, true};
  auto run = [&](int threads) {
    std::vector<float> out(B * Tn * NH * HS), att(B * NH * Tn * Tn), scratch(Tn * Tn), d(B * Tn * ld, 0.f);
    with_threads(threads, [&] {
      attention_forward(out.data(), att.data(), qkv.data(), qkv.data() + NH * HS,
                        qkv.data() + (NH + NKV) * HS, s);
      attention_backward(d.data(), d.data() + NH * HS, d.data() + (NH + NKV) * HS, scratch.data(),
                         dout.data(), att.data(), qkv.data(), qkv.data() + NH * HS,
                         qkv.data() + (NH + NKV) * HS, s);
    });
    out.insert(out.end(), d.begin(), d.end());
    return out;
  };
  const auto one = run(1), two = run(2);
  // float sums of <= 40 terms of size O(1): a few ulp of 40 -> 1e-5 absolute is a wide margin
  // that still catches a wrong or missing block (errors of O(0.1..1)).
  EXPECT_LT(max_diff(one, two), 1e-5);
}
