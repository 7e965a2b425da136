// One full training step of GPT-2 124M on one rank, fp32: zero gradients, forward, backward,
// gradient norm, AdamW. Reports tokens/s, achieved GFLOP/s by the 6N + 12 L T C rule and
// the fraction of this machine's measured fp32 FMA peak (docs/performance.md).
//   bench_train_step [--benchmark_filter=T:256]
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include <Kokkos_Core.hpp>

#include "strata/config/load.hpp"
#include "strata/core/rng.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/peak.hpp"
#include "strata/model/transformer.hpp"
#include "strata/optim/optimizer.hpp"

using namespace strata;

namespace {

int threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

double peak_gflops() {
  static const double peak = kernels::cpu::measure_fp32_peak_gflops(threads(), 1.0);
  return peak;
}

void BM_TrainStepGpt2Small(benchmark::State& state) {
  const int B = int(state.range(0)), T = int(state.range(1));
  kernels::cpu::set_blas_threads(threads());
  const config::ModelConfig cfg =
      config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/gpt2_124m.yaml");
  model::Transformer<float> model(cfg, B, T);
  model.init_parameters(1);
  config::OptimConfig ocfg;
  optim::AdamW<float> adamw(ocfg, optim::make_param_groups(model.table(), ocfg), model.table().numel());
  std::vector<std::int32_t> tokens(std::size_t(B) * T), targets(tokens.size());
  const core::CounterRng rng(3, "bench.tokens");
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = std::int32_t(rng.below(std::uint64_t(cfg.vocab_size), i));
    targets[i] = std::int32_t(rng.below(std::uint64_t(cfg.vocab_size), i, 1));
  }
  auto step = [&] {
    model.zero_grads();
    model.forward_backward(tokens.data(), targets.data(), 1.0f / float(tokens.size()));
    const double norm =
        std::sqrt(kernels::cpu::sum_squares(model.grads().data(), std::int64_t(model.grads().size())));
    adamw.step(model.params().data(), model.grads().data(), 1e-4, optim::clip_factor(norm, 1.0));
  };
  step();  // warm-up: first touch of every page
  for (auto _ : state) step();
  const double tokens_per_step = double(B) * T;
  const double flops_per_step = model.model_flops_per_token() * tokens_per_step;
  state.counters["tokens_per_s"] =
      benchmark::Counter(tokens_per_step, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_step / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GFLOP/s"] = peak_gflops();
  state.counters["frac_of_peak"] =
      benchmark::Counter(flops_per_step / 1e9 / peak_gflops(), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("gpt2_124m fp32, " + std::to_string(threads()) + " threads");
}

}  // namespace

BENCHMARK(BM_TrainStepGpt2Small)
    ->ArgNames({"B", "T"})
    ->Args({4, 64})
    ->Args({4, 256})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

int main(int argc, char** argv) {
  strata::kernels::cpu::ensure_blas_environment(argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  peak_gflops();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
