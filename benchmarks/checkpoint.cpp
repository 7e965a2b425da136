// Checkpoint write and read throughput for GPT-2 124M (parameters + Adam moments, ~1.5 GB):
// EngineCheckpointer::save (parallel HDF5 collective write, checksums, fsync, atomic publish)
// and ::load (collective read, shape and checksum validation). Run under MPI, e.g.
//   build/benchmarks/bench_checkpoint                       # 1 rank
//   mpirun -np 8 build/benchmarks/bench_checkpoint --tp 2 --pp 2 --zero 1
// Every rank runs every iteration (the operations are collective); rank 0 reports GB/s of the
// checkpoint file. STRATA_BENCH_DIR picks the directory (default /tmp/strata_bench_ckpt);
// the page cache is not dropped, so reads right after writes measure memory-speed I/O on one
// node, as a local SSD or a parallel file system's client cache would.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "strata/ckpt/engine_checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/parallel/pipeline.hpp"

using namespace strata;

namespace {

struct Setup {
  config::JobConfig job;
  std::unique_ptr<comm::RankGrid> grid;
  std::unique_ptr<parallel::CpuEngine> engine;
  std::unique_ptr<ckpt::EngineCheckpointer> io;
  std::string dir;
  std::string last_file;
};
Setup* setup = nullptr;

void BM_Save(benchmark::State& state) {
  ckpt::TrainState st;
  for (auto _ : state) {
    ++st.step;
    const ckpt::SaveResult r = setup->io->save(setup->dir, st, 2);
    setup->last_file = r.file;
    state.counters["GB"] = double(r.bytes) / 1e9;
    state.counters["GB/s"] =
        benchmark::Counter(double(r.bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  }
}

void BM_Load(benchmark::State& state) {
  const auto bytes = double(std::filesystem::file_size(setup->last_file));
  for (auto _ : state) setup->io->load(setup->last_file, "");
  state.counters["GB"] = bytes / 1e9;
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

int flag(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  kernels::cpu::ensure_blas_environment(argv);
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  Setup s;
  s.job.model = config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/gpt2_124m.yaml");
  s.job.parallel.tp = flag(argc, argv, "--tp", 1);
  s.job.parallel.pp = flag(argc, argv, "--pp", 1);
  s.job.parallel.dp = world / (s.job.parallel.tp * s.job.parallel.pp);
  s.job.parallel.zero_stage = flag(argc, argv, "--zero", 0);
  s.job.parallel.micro_batch_size = 1;
  s.job.train.seq_len = 16;  // activations are not part of a checkpoint: keep them small
  s.grid = std::make_unique<comm::RankGrid>(MPI_COMM_WORLD, s.job.parallel.tp, s.job.parallel.pp,
                                            s.job.parallel.dp);
  s.engine = std::make_unique<parallel::CpuEngine>(s.job.model, s.job.parallel, s.job.optim,
                                                   s.job.train.seq_len, s.job.parallel.pp, *s.grid);
  s.engine->init_parameters(1);
  s.io = std::make_unique<ckpt::EngineCheckpointer>(s.job, *s.engine, *s.grid);
  const char* dir = std::getenv("STRATA_BENCH_DIR");
  s.dir = std::string(dir ? dir : "/tmp/strata_bench_ckpt") + "/np" + std::to_string(world);
  setup = &s;
  const std::string layout = "/tp" + std::to_string(s.job.parallel.tp) + "-pp" +
                             std::to_string(s.job.parallel.pp) + "-dp" + std::to_string(s.job.parallel.dp) +
                             "-zero" + std::to_string(s.job.parallel.zero_stage);
  benchmark::RegisterBenchmark(("checkpoint_save/gpt2_124m" + layout).c_str(), BM_Save)
      ->Iterations(3)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(("checkpoint_load/gpt2_124m" + layout).c_str(), BM_Load)
      ->Iterations(3)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  NullReporter quiet;
  if (rank == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&quiet);
  benchmark::Shutdown();
  if (rank == 0) std::filesystem::remove_all(s.dir);
  s.io.reset();
  s.engine.reset();
  s.grid.reset();
  MPI_Finalize();
  return 0;
}
