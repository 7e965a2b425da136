// GoogleTest main for the unit suites: Kokkos is initialised once around all tests.
#include <gtest/gtest.h>

#include <Kokkos_Core.hpp>

#include "strata/kernels/cpu/matmul.hpp"

int main(int argc, char** argv) {
  // Test the BLAS kernels production runs use (may re-exec with OPENBLAS_CORETYPE set).
  strata::kernels::cpu::ensure_blas_environment(argv);
  ::testing::InitGoogleTest(&argc, argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  return RUN_ALL_TESTS();
}
