// Shared start-up of the benchmark programs.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "strata/kernels/cpu/matmul.hpp"

namespace strata::bench {

// OpenBLAS picks its kernels when it loads; where it fell back to generic ones on a CPU it
// does not know (see blas_suggested_coretype), re-run this program with OPENBLAS_CORETYPE
// set. Returns only if no re-exec was needed or it failed.
inline void ensure_blas_coretype(char** argv) {
  const char* core = kernels::cpu::blas_suggested_coretype();
  if (!core || std::getenv("OPENBLAS_CORETYPE")) return;
  std::fprintf(stderr, "OpenBLAS chose generic kernels on this CPU; re-running with OPENBLAS_CORETYPE=%s\n", core);
  setenv("OPENBLAS_CORETYPE", core, 1);
  execv("/proc/self/exe", argv);
  std::perror("execv");  // fall through: run with the slow kernels
}

}  // namespace strata::bench
