// GoogleTest main for the multi-rank suites (run under mpiexec): MPI and Kokkos around all
// tests; only rank 0 prints the test progress; the exit code is non-zero when any rank failed.
// Each run gets its own temporary folder (testing::TempDir() reads TEST_TMPDIR), named after
// rank 0's pid, so two runs on one machine (two builds tested at once, a CI run beside a
// developer's) never share checkpoint or data files; rank 0 removes it at the end.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <Kokkos_Core.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "strata/kernels/cpu/matmul.hpp"

int main(int argc, char** argv) {
  strata::kernels::cpu::ensure_blas_environment(argv);
  int provided = 0;  // as strata's main (cli/run_cli.cpp): the watchdog thread may read progress windows
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  long pid = long(getpid());
  MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/strata_mpi_tests." + std::to_string(pid);
  std::error_code made;  // every rank: ranks on other nodes see their own /tmp
  std::filesystem::create_directories(dir, made);
  MPI_Barrier(MPI_COMM_WORLD);
  setenv("TEST_TMPDIR", dir.c_str(), 1);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = 0;
  {
    Kokkos::ScopeGuard kokkos(argc, argv);
    failed = RUN_ALL_TESTS();
  }
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  std::error_code ignored;  // every rank is past its tests (the all-reduce above)
  if (rank == 0) std::filesystem::remove_all(dir, ignored);
  if (failed) std::fprintf(stderr, "rank %d: tests failed\n", rank);
  MPI_Finalize();
  return any_failed;
}
