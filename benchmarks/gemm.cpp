// sgemm at the GPT-2 124M training shapes (B*T = 1024 rows, C = 768, F = 3072, V = 50257),
// through strata's gemm() (OpenBLAS). For each linear layer Y = X W^T (W[out, in]):
//   fwd  Y[1024, out]  = X[1024, in] W^T        M=1024, N=out, K=in    (N, T)
//   dX   dX[1024, in]  = dY[1024, out] W         M=1024, N=in,  K=out   (N, N)
//   dW   dW[out, in]   = dY^T X                  M=out,  N=in,  K=1024  (T, N)
// Counters: GFLOP/s (2 M N K per call) and peak_frac, the fraction of this machine's
// fp32 FMA peak measured at start with measure_fp32_peak_gflops(2, 0.5).
// BLAS threads: 2 (this machine's cores) unless --threads=N is given first. Where OpenBLAS
// fell back to generic kernels the program re-runs itself with OPENBLAS_CORETYPE set.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/peak.hpp"

using namespace strata::kernels::cpu;

namespace {

double g_peak_gflops = 0.0;

struct GemmShape {
  std::string name;
  index_t M, N, K;
  bool ta, tb;
};

void fill_small(std::vector<float>& x, unsigned seed) {
  unsigned s = seed;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>((s >> 9) & 0xffff) / 65536.0f - 0.5f;
  }
}

void bm_sgemm(benchmark::State& state, GemmShape g) {
  std::vector<float> A(g.M * g.K), B(g.K * g.N), C(g.M * g.N, 0.0f);
  fill_small(A, 1);
  fill_small(B, 2);
  const index_t lda = g.ta ? g.M : g.K, ldb = g.tb ? g.K : g.N;
  for (auto _ : state) {
    gemm<float>(g.ta, g.tb, g.M, g.N, g.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), g.N);
    benchmark::ClobberMemory();
  }
  const double gflop = 2.0 * double(g.M) * double(g.N) * double(g.K) * 1e-9;
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_frac"] =
      benchmark::Counter(gflop / g_peak_gflops, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  strata::bench::ensure_blas_environment(argv);
  int threads = 2;
  if (argc > 1 && std::strncmp(argv[1], "--threads=", 10) == 0) {
    threads = std::atoi(argv[1] + 10);
    for (int i = 1; i + 1 < argc; ++i) argv[i] = argv[i + 1];
    --argc;
  }
  benchmark::Initialize(&argc, argv);
  set_blas_threads(threads);
  g_peak_gflops = measure_fp32_peak_gflops(threads, 0.5);
  std::printf("BLAS: %s, %d threads; measured fp32 FMA peak (%d threads): %.1f GFLOP/s\n", blas_name(),
              blas_threads(), threads, g_peak_gflops);

  const index_t R = 1024, C = 768, F = 3072, V = 50257;
  struct Layer {
    const char* name;
    index_t in, out;
  };
  const Layer layers[] = {
      {"qkv", C, 3 * C}, {"attn_proj", C, C}, {"fc", C, F}, {"mlp_proj", F, C}, {"lm_head", C, V}};
  for (const auto& l : layers) {
    const std::string base = std::string("sgemm/") + l.name;
    const GemmShape shapes[] = {{base + "/fwd", R, l.out, l.in, false, true},
                                {base + "/dX", R, l.in, l.out, false, false},
                                {base + "/dW", l.out, l.in, R, true, false}};
    for (const auto& s : shapes)
      benchmark::RegisterBenchmark(s.name.c_str(), bm_sgemm, s)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
