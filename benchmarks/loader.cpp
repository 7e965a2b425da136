// Training input throughput: tokens/s of random windows (seq_len + 1 tokens) read from an HDF5
// token dataset through the blended source, directly and through the AsyncLoader.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "strata/comm/local_communicator.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace strata;
using namespace strata::data;

namespace {

strata::comm::LocalCommunicator one_rank_group("bench");  // one process: collectives are copies

// 64 M tokens of uint16 (128 MiB), written once.
std::string dataset() {
  const fs::path path = fs::temp_directory_path() / "strata_bench_loader.h5";
  if (fs::exists(path)) return path.string();
  const ByteTokenizer t;
  DatasetInfo info;
  info.tokenizer_name = t.name();
  info.tokenizer_hash = t.content_hash();
  info.vocab_size = t.vocab_size();
  info.eos_id = t.eos_id();
  std::vector<std::int32_t> tokens(64u << 20);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = std::int32_t(((i * 2654435761u) >> 24) & 255);
  std::vector<std::uint64_t> lengths(tokens.size() / 4096, 4096);
  write_token_dataset(path.string(), one_rank_group, info, tokens, lengths);
  return path.string();
}

config::DataConfig data_config() {
  config::DataConfig c;
  c.source = config::DataSource::hdf5;
  c.datasets = {{dataset(), 1.0}};
  c.max_epochs = 0;  // the benchmark loops over the data many times
  return c;
}

void BM_RandomWindows(benchmark::State& state) {
  const int T = int(state.range(0));
  config::ModelConfig model;
  model.vocab_size = 257;
  auto source = make_sample_source(data_config(), model, T, 1);
  std::vector<std::int32_t> w(std::size_t(T) + 1);
  std::uint64_t s = 0;
  for (auto _ : state) {
    source->train_window(s++, w.data());
    benchmark::DoNotOptimize(w.data());
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(state.iterations()) * (T + 1), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RandomWindows)->Arg(1024)->Arg(2048)->Arg(8192)->UseRealTime();

void BM_AsyncLoaderBatches(benchmark::State& state) {
  const int T = int(state.range(0)), micro = 8;
  config::ModelConfig model;
  model.vocab_size = 257;
  auto source = make_sample_source(data_config(), model, T, 1);
  AsyncLoader loader(*source, {micro, T, micro, 1, 0, 4, 0});
  for (auto _ : state) {
    const auto b = loader.next();
    benchmark::DoNotOptimize(b.inputs);
  }
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(state.iterations()) * micro * T, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AsyncLoaderBatches)->Arg(1024)->Arg(2048)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
