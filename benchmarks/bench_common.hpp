// Shared start-up of the benchmark programs.
#pragma once
#include "strata/kernels/cpu/matmul.hpp"

namespace strata::bench {

// OpenBLAS picks its kernels when it loads; where it fell back to generic ones on a CPU it
// does not know, re-run this program with OPENBLAS_CORETYPE set (see matmul.hpp).
inline void ensure_blas_environment(char** argv) { kernels::cpu::ensure_blas_environment(argv); }

}  // namespace strata::bench
