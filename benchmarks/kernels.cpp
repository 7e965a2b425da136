// The non-GEMM CPU kernels at GPT-2 124M training shapes (B*T = N = 1024 rows, C = 768,
// F = 3072, V = 50257; attention B = 4, T = 256, NH = 12, HS = 64, causal; AdamW over all
// 124M parameters). Reported: time per call and GB/s of the nominal traffic (each array
// read or written once per call; the real traffic of multi-pass kernels is higher but
// stays in cache). Attention also reports GFLOP/s of its GEMMs counted over the causal
// triangle, and runs with 1 and 2 BLAS threads (its per-head GEMMs are small).
#include <benchmark/benchmark.h>

#include <Kokkos_Core.hpp>
#include <cstdint>
#include <vector>

#include "bench_common.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/norm.hpp"

using namespace strata::kernels::cpu;

namespace {

constexpr index_t N = 1024, C = 768, F = 3072, V = 50257;

std::vector<float> data(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::vector<float> x(n);
  unsigned s = seed;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    v = scale * (static_cast<float>((s >> 9) & 0xffff) / 32768.0f - 1.0f);
  }
  return x;
}

void set_bytes(benchmark::State& st, double bytes) {
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_layernorm_fwd(benchmark::State& st) {
  auto x = data(N * C, 1), w = data(C, 2), b = data(C, 3);
  std::vector<float> y(N * C), mean(N), rstd(N);
  for (auto _ : st) {
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * N * C * 4);
}

void BM_layernorm_bwd(benchmark::State& st) {
  auto x = data(N * C, 1), w = data(C, 2), b = data(C, 3), dy = data(N * C, 4);
  std::vector<float> y(N * C), mean(N), rstd(N), dx(N * C, 0.f), dw(C, 0.f), db(C, 0.f);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
  for (auto _ : st) {
    layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), N, C);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 4.0 * N * C * 4);  // dy, x in; dx in and out
}

void BM_gelu_fwd(benchmark::State& st) {
  auto x = data(N * F, 5, 3.0f);
  std::vector<float> y(N * F);
  for (auto _ : st) {
    gelu_forward(y.data(), x.data(), N * F);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * N * F * 4);
}

void BM_gelu_bwd(benchmark::State& st) {
  auto x = data(N * F, 5, 3.0f), dy = data(N * F, 6);
  std::vector<float> dx(N * F, 0.f);
  for (auto _ : st) {
    gelu_backward(dx.data(), dy.data(), x.data(), N * F);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 4.0 * N * F * 4);
}

constexpr index_t AB = 4, AT = 256, NH = 12, HS = 64;
AttentionShape attention_shape() { return {AB, AT, NH, NH, HS, 3 * NH * HS, 3 * NH * HS, true}; }
double attention_causal_gflop(int gemms) { return 2.0 * gemms * AB * NH * HS * (AT * (AT + 1) / 2.0) * 1e-9; }

void BM_attention_fwd(benchmark::State& st) {
  set_blas_threads(static_cast<int>(st.range(0)));
  const auto s = attention_shape();
  auto qkv = data(AB * AT * s.ld_q, 7);
  std::vector<float> out(AB * AT * NH * HS), att(AB * NH * AT * AT);
  for (auto _ : st) {
    attention_forward(out.data(), att.data(), qkv.data(), qkv.data() + NH * HS, qkv.data() + 2 * NH * HS, s);
    benchmark::ClobberMemory();
  }
  set_bytes(st, (qkv.size() + out.size() + att.size()) * 4.0);
  st.counters["GFLOP/s"] =
      benchmark::Counter(attention_causal_gflop(2), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_attention_bwd(benchmark::State& st) {
  set_blas_threads(static_cast<int>(st.range(0)));
  const auto s = attention_shape();
  auto qkv = data(AB * AT * s.ld_q, 7), dout = data(AB * AT * NH * HS, 8);
  std::vector<float> out(AB * AT * NH * HS), att(AB * NH * AT * AT), dqkv(qkv.size(), 0.f), scratch(AT * AT);
  attention_forward(out.data(), att.data(), qkv.data(), qkv.data() + NH * HS, qkv.data() + 2 * NH * HS, s);
  for (auto _ : st) {
    attention_backward(dqkv.data(), dqkv.data() + NH * HS, dqkv.data() + 2 * NH * HS, scratch.data(),
                       dout.data(), att.data(), qkv.data(), qkv.data() + NH * HS, qkv.data() + 2 * NH * HS,
                       s);
    benchmark::ClobberMemory();
  }
  set_bytes(st, (2.0 * qkv.size() + 2.0 * dqkv.size() + dout.size() + att.size()) * 4.0);
  st.counters["GFLOP/s"] =
      benchmark::Counter(attention_causal_gflop(4), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_cross_entropy_fused(benchmark::State& st) {
  // The fused kernel overwrites logits with gradients; running it again on its own output
  // costs the same (branch-free passes), so the buffer is not refreshed between iterations.
  auto logits = data(N * V, 9, 8.0f);
  std::vector<float> losses(N);
  std::vector<std::int32_t> targets(N);
  for (index_t n = 0; n < N; ++n) targets[n] = static_cast<std::int32_t>((n * 7919) % V);
  for (auto _ : st) {
    cross_entropy_fused(logits.data(), losses.data(), targets.data(), 1.0f / N, N, V, V);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * N * V * 4);
}

void BM_adamw(benchmark::State& st) {
  const index_t n = 124'000'000;
  auto p = data(n, 10), g = data(n, 11);
  std::vector<float> m(n, 0.f), v(n, 0.f);
  AdamWParams hp{6e-4, 0.9, 0.95, 1e-8, 0.1, 1.0, 1};
  for (auto _ : st) {
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp);
    ++hp.step;
    benchmark::ClobberMemory();
  }
  set_bytes(st, 7.0 * n * 4);  // p, g, m, v in; p, m, v out
}

}  // namespace

BENCHMARK(BM_layernorm_fwd)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_layernorm_bwd)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gelu_fwd)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gelu_bwd)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_attention_fwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_attention_bwd)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_cross_entropy_fused)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_adamw)->Unit(benchmark::kMillisecond)->MinTime(1.0);

int main(int argc, char** argv) {
  strata::bench::ensure_blas_environment(argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
