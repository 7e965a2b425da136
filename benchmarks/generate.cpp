// Token generation with and without the KV cache (model/inference.hpp), greedy, one rank:
// a 16-token prompt continued by N tokens with the demo's llama_tiny model (vocab 257). With
// the cache each new token costs one token's forward (linear in N); without it the whole
// sequence is re-run for every token (quadratic). Reports generated tokens/s.
//   bench_generate [--benchmark_filter=cache]
#include <benchmark/benchmark.h>

#include <Kokkos_Core.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "strata/config/load.hpp"
#include "strata/model/sampling.hpp"
#include "strata/model/transformer.hpp"

using namespace strata;

namespace {

void BM_Generate(benchmark::State& state) {
  const int n_new = int(state.range(0));
  const bool cache = state.range(1) != 0;
  kernels::cpu::set_blas_threads(int(std::max(1u, std::thread::hardware_concurrency())));
  config::ModelConfig cfg =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/llama_tiny.yaml");
  cfg.vocab_size = 257;
  model::Transformer<float> init(cfg, 1, 1);
  init.init_parameters(1);
  model::CpuDecoder<float> dec(cfg);
  std::copy(init.params().begin(), init.params().end(), dec.params().begin());
  const std::vector<std::int32_t> prompt = {84,  104, 117, 115, 32,  115, 97, 105,
                                            116, 104, 32,  116, 104, 101, 32, 76};
  const std::size_t V = std::size_t(cfg.vocab_size);
  for (auto _ : state) {
    std::vector<std::int32_t> seq = prompt;
    dec.reset();
    const float* lg = dec.forward(seq);
    for (int i = 0; i < n_new; ++i) {
      seq.push_back(model::argmax(std::span<const float>(lg, V)));
      if (cache) {
        lg = dec.forward(std::span<const std::int32_t>(&seq.back(), 1));
      } else {
        dec.reset();
        lg = dec.forward(seq);
      }
    }
    benchmark::DoNotOptimize(seq.data());
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(n_new), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string("llama_tiny fp32, ") + (cache ? "KV cache" : "no cache"));
}

}  // namespace

BENCHMARK(BM_Generate)
    ->ArgNames({"new", "cache"})
    ->Args({64, 1})
    ->Args({64, 0})
    ->Args({224, 1})
    ->Args({224, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  strata::bench::ensure_blas_environment(argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
