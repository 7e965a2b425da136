// Communicator collectives against raw MPI on the same buffers: all-reduce, reduce-scatter
// and all-gather from 4 KiB to 256 MiB. Run under MPI, e.g.
//   mpirun -np 2 build/benchmarks/bench_collectives
// Every rank runs every benchmark with a fixed iteration count (collectives must match across
// ranks); rank 0 reports. Counters: algbw = bytes / time, busbw = algbw * 2(n-1)/n for
// all-reduce and (n-1)/n for reduce-scatter / all-gather (NCCL's convention).
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <vector>

#include "strata/comm/mpi_communicator.hpp"
#include "strata/kernels/cpu/matmul.hpp"

using namespace strata;

namespace {

enum class Op { all_reduce, reduce_scatter, all_gather };
comm::Communicator* wrapped = nullptr;
MPI_Comm raw = MPI_COMM_NULL;

void BM_Collective(benchmark::State& state, Op op, bool use_wrapper) {
  const std::size_t bytes = std::size_t(state.range(0));
  int n = 1;
  MPI_Comm_size(raw, &n);
  const std::size_t count = bytes / sizeof(float);  // elements of the full buffer
  std::vector<float> a(count, 1.0f), b(count, 0.0f);
  const std::size_t piece = count / std::size_t(n);
  for (auto _ : state) {
    if (use_wrapper) {
      switch (op) {
        case Op::all_reduce: wrapped->all_reduce(a.data(), count, DType::f32); break;
        case Op::reduce_scatter: wrapped->reduce_scatter(a.data(), b.data(), piece, DType::f32); break;
        case Op::all_gather: wrapped->all_gather(a.data(), b.data(), piece, DType::f32); break;
      }
    } else {
      switch (op) {
        case Op::all_reduce:
          MPI_Allreduce(MPI_IN_PLACE, a.data(), int(count), MPI_FLOAT, MPI_SUM, raw);
          break;
        case Op::reduce_scatter:
          MPI_Reduce_scatter_block(a.data(), b.data(), int(piece), MPI_FLOAT, MPI_SUM, raw);
          break;
        case Op::all_gather:
          MPI_Allgather(a.data(), int(piece), MPI_FLOAT, b.data(), int(piece), MPI_FLOAT, raw);
          break;
      }
    }
  }
  const double factor = op == Op::all_reduce ? 2.0 * (n - 1) / n : double(n - 1) / n;
  state.counters["algbw_GB/s"] =
      benchmark::Counter(double(bytes) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["busbw_GB/s"] =
      benchmark::Counter(double(bytes) * factor / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  kernels::cpu::ensure_blas_environment(argv);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);  // as strata's main (cli/run_cli.cpp)
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  comm::MpiCommunicator communicator(dup, "bench", rank, 600.0);
  wrapped = &communicator;
  const struct {
    const char* name;
    Op op;
  } ops[] = {
      {"all_reduce", Op::all_reduce}, {"reduce_scatter", Op::reduce_scatter}, {"all_gather", Op::all_gather}};
  for (const auto& o : ops)
    for (bool w : {false, true})
      for (long bytes = 4096; bytes <= (256L << 20); bytes *= 4) {
        // Fixed iterations (the same on every rank): about 256 MiB moved per benchmark.
        const long iters = std::max(3L, std::min(1000L, (256L << 20) / bytes));
        benchmark::RegisterBenchmark((std::string(o.name) + (w ? "/communicator" : "/raw_mpi")).c_str(),
                                     BM_Collective, o.op, w)
            ->Arg(bytes)
            ->Iterations(iters)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
  benchmark::Initialize(&argc, argv);
  NullReporter quiet;
  if (rank == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&quiet);
  benchmark::Shutdown();
  MPI_Comm_free(&raw);
  MPI_Finalize();
  return 0;
}
