// strata prepare end to end on real text, one rank: MB/s of input through read -> normalise ->
// filters -> exact + near dedup -> PII -> tokenise -> HDF5, every stage on, with the seconds of
// each stage as counters. Inputs: the KJV (bible-kjv, 4.3 MB, paragraphs as documents) when
// installed, else the Debian licence texts repeated to ~4 MB; and the fortune cookies
// (fortunes, 2.9 MB as JSONL, one document per entry) when installed. Tokenizers: bytes, and
// GPT-2 (KJV and fortunes) and bert-base-uncased (KJV) when scripts/fetch-tokenizers.sh has
// fetched their files.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "strata/comm/local_communicator.hpp"
#include "strata/data/prepare.hpp"
#include "strata/data/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace strata::data;

namespace {

strata::comm::LocalCommunicator one_rank_group("bench");  // one process: collectives are copies

std::string input_file() {
  const fs::path dir = fs::temp_directory_path() / "strata_bench_prepare";
  fs::create_directories(dir);
  const fs::path path = dir / "corpus.txt";
  if (fs::exists(path)) return path.string();
  std::string text;
  if (fs::exists("/usr/lib/bible.data")) {
    FILE* p = popen("bible -p /usr/lib 'gen1:1-rev22:21' 2>/dev/null", "r");
    char buf[1 << 16];
    for (std::size_t n; p && (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
    if (p) pclose(p);
  }
  if (text.size() < 1000000) {
    for (const auto& e : fs::directory_iterator("/usr/share/common-licenses"))
      if (e.is_regular_file()) {
        std::ifstream in(e.path());
        std::ostringstream os;
        os << in.rdbuf();
        text += os.str() + "\n\n";
      }
    const std::string once = text;
    while (text.size() < 4000000) text += once;  // repeats: exercises exact dedup
  }
  std::ofstream(path) << text;
  return path.string();
}

// The fortunes as JSONL, one entry per line (the demo corpus's format); "" when not installed.
std::string fortunes_file() {
  const fs::path dir = fs::temp_directory_path() / "strata_bench_prepare";
  fs::create_directories(dir);
  const fs::path path = dir / "fortunes.jsonl";
  if (fs::exists(path)) return path.string();
  const fs::path src = "/usr/share/games/fortunes";
  if (!fs::is_directory(src)) return "";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (e.is_symlink() || !e.is_regular_file() || name.ends_with(".dat") || name.ends_with(".u8")) continue;
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::ofstream out(path);
  for (const auto& f : files) {
    std::ifstream in(f);
    std::ostringstream os;
    os << in.rdbuf();
    const std::string text = os.str();
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t end = text.find("\n%\n", pos);
      if (end == std::string::npos) end = text.size();
      std::string entry = text.substr(pos, end - pos);
      pos = end + 3;
      if (entry.find_first_not_of("%\n \t") == std::string::npos) continue;
      // A JSON string: escape quotes, backslashes and control characters.
      std::string j = "{\"text\": \"";
      for (unsigned char c : entry) {
        if (c == '"' || c == '\\')
          j += '\\', j += char(c);
        else if (c == '\n')
          j += "\\n";
        else if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          j += buf;
        } else
          j += char(c);
      }
      out << j << "\"}\n";
    }
  }
  return path.string();
}

void run(benchmark::State& state, const std::string& input, DocSplit split, const std::string& tokenizer) {
  if (input.empty()) {
    state.SkipWithError("input not installed (Debian fortunes)");
    return;
  }
  PrepareOptions o;
  o.inputs = {input};
  o.output = (fs::temp_directory_path() / "strata_bench_prepare" / "out.h5").string();
  o.doc_split = split;  // KJV: paragraphs / chapters as documents
  o.filters.min_words = 5;
  o.tokenizer = tokenizer;
  o.progress_interval_s = 0;
  o.quiet = true;
  double bytes = 0;
  PrepareStats sum;
  int runs = 0;
  double cpu_s = 0, wall_s = 0;
  for (auto _ : state) {
    const std::clock_t c0 = std::clock();
    const PrepareStats st = run_prepare(o, one_rank_group);
    cpu_s += double(std::clock() - c0) / CLOCKS_PER_SEC;
    wall_s += st.seconds;
    bytes += double(st.input_bytes);
    ++runs;
    state.counters["docs_written"] = double(st.documents_written);
    sum.read_seconds += st.read_seconds - st.normalize_seconds - st.filter_seconds - st.quality_seconds;
    sum.normalize_seconds += st.normalize_seconds;
    sum.filter_seconds += st.filter_seconds;
    sum.exact_seconds += st.exact_seconds;
    sum.near_seconds += st.near_seconds;
    sum.pii_seconds += st.pii_seconds;
    sum.tokenize_seconds += st.tokenize_seconds - st.pii_seconds;
    sum.write_seconds += st.write_seconds;
    sum.input_bytes = st.input_bytes;
  }
  // MB/s of input per core: the whole run over its CPU time, and each stage over its own time.
  // Stages are timed by the wall clock per document; on a shared machine the CPU gets only a
  // share of the wall time, so each stage's time is scaled by the run's CPU/wall ratio.
  const double mb = double(sum.input_bytes) / 1e6 * runs;
  const double cpu_share = wall_s > 0 ? std::min(1.0, cpu_s / wall_s) : 1.0;
  auto rate = [&](double s) { return s > 0 ? mb / (s * cpu_share) : 0.0; };
  state.counters["cpu_MBps"] = cpu_s > 0 ? mb / cpu_s : 0.0;
  state.counters["read_MBps"] = rate(sum.read_seconds);
  state.counters["normalize_MBps"] = rate(sum.normalize_seconds);
  state.counters["filter_MBps"] = rate(sum.filter_seconds);
  state.counters["exact_MBps"] = rate(sum.exact_seconds);
  state.counters["near_MBps"] = rate(sum.near_seconds);
  state.counters["pii_MBps"] = rate(sum.pii_seconds);
  state.counters["tokenize_MBps"] = rate(sum.tokenize_seconds);
  state.counters["write_MBps"] = rate(sum.write_seconds);
  state.SetBytesProcessed(std::int64_t(bytes));
}

bool have_tokenizer(const std::string& spec) {
  try {
    load_tokenizer(spec);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void BM_PrepareKjv(benchmark::State& state) { run(state, input_file(), DocSplit::blank_line, "bytes"); }
void BM_PrepareFortunes(benchmark::State& state) { run(state, fortunes_file(), DocSplit::file, "bytes"); }
void BM_PrepareKjvGpt2(benchmark::State& state) {
  if (!have_tokenizer("gpt2")) return state.SkipWithError("gpt2 files missing (scripts/fetch-tokenizers.sh)");
  run(state, input_file(), DocSplit::blank_line, "gpt2");
}
void BM_PrepareFortunesGpt2(benchmark::State& state) {
  if (!have_tokenizer("gpt2")) return state.SkipWithError("gpt2 files missing (scripts/fetch-tokenizers.sh)");
  run(state, fortunes_file(), DocSplit::file, "gpt2");
}
void BM_PrepareKjvBert(benchmark::State& state) {
  if (!have_tokenizer("bert-base-uncased"))
    return state.SkipWithError("bert-base-uncased missing (scripts/fetch-tokenizers.sh)");
  run(state, input_file(), DocSplit::blank_line, "bert-base-uncased");
}
BENCHMARK(BM_PrepareKjv)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_PrepareFortunes)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_PrepareKjvGpt2)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_PrepareFortunesGpt2)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_PrepareKjvBert)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
