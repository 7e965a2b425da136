// Tokeniser throughput in MB/s on one core, on real English prose: the King James Bible
// (Debian bible-kjv, 4.3 MB), as `strata prepare` sees it. Needs the tokenizer files of
// scripts/fetch-tokenizers.sh.
//   bench_tokenizer [--benchmark_filter=gpt2]
// Text: $STRATA_BENCH_TEXT, else <repo>/.cache/corpora/kjv.txt (written on first use by
// `bible -p /usr/lib gen1:1-rev22:21`), else the texts in /usr/share/common-licenses.
//   Encode/<spec>          steady state: the per-thread piece cache is warm after the first pass
//   EncodeColdCache/<spec> every pass with a fresh tokenizer (an empty cache): the first document
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "strata/data/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace strata;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string kjv_from_bible_program() {
  if (!fs::exists("/usr/bin/bible") || !fs::exists("/usr/lib/bible.data")) return "";
  std::string text;
  if (FILE* p = popen("/usr/bin/bible -p /usr/lib 'gen1:1-rev22:21' 2>/dev/null", "r")) {
    char buf[1 << 16];
    for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
    pclose(p);
  }
  return text;
}

struct Corpus {
  std::string text;
  std::string source;
};

const Corpus& corpus() {
  static const Corpus c = [] {
    if (const char* env = std::getenv("STRATA_BENCH_TEXT"); env && *env) return Corpus{read_file(env), env};
    const fs::path cached = fs::path(STRATA_SOURCE_DIR) / ".cache" / "corpora" / "kjv.txt";
    if (fs::exists(cached)) return Corpus{read_file(cached), "KJV (" + cached.string() + ")"};
    if (std::string kjv = kjv_from_bible_program(); kjv.size() > 1000000) {
      fs::create_directories(cached.parent_path());
      std::ofstream(cached, std::ios::binary) << kjv;
      return Corpus{kjv, "KJV (bible-kjv)"};
    }
    std::string all;
    for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
      if (e.is_regular_file()) all += read_file(e.path());
    return Corpus{all, "/usr/share/common-licenses"};
  }();
  return c;
}

void report(benchmark::State& state, std::size_t tokens) {
  const double bytes = double(corpus().text.size());
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(bytes));
  state.counters["tokens_per_byte"] = double(tokens) / bytes;
  state.SetLabel(corpus().source);
}

void Encode(benchmark::State& state, const char* spec) {
  std::unique_ptr<data::Tokenizer> tok;
  try {
    tok = data::load_tokenizer(spec);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::vector<std::int32_t> ids;
  tok->encode(corpus().text, ids);  // warm the cache
  for (auto _ : state) {
    ids.clear();
    tok->encode(corpus().text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  report(state, ids.size());
}

void EncodeColdCache(benchmark::State& state, const char* spec) {
  std::vector<std::int32_t> ids;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<data::Tokenizer> tok;
    try {
      tok = data::load_tokenizer(spec);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
    ids.clear();
    state.ResumeTiming();
    tok->encode(corpus().text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  report(state, ids.size());
}

void Decode(benchmark::State& state, const char* spec) {
  const auto tok = data::load_tokenizer(spec);
  const auto ids = tok->encode(corpus().text);
  for (auto _ : state) {
    std::string text = tok->decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  report(state, ids.size());
}

}  // namespace

BENCHMARK_CAPTURE(Encode, gpt2, "gpt2")->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(EncodeColdCache, gpt2, "gpt2")->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(Encode, cl100k_base, "cl100k_base")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Encode, o200k_base, "o200k_base")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Encode, bytes, "bytes")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Encode, bert_base_uncased, "bert-base-uncased")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Decode, gpt2, "gpt2")->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
