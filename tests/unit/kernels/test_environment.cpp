// The kernel tests run one BLAS thread (ctest may run several test processes on the
// 2-core machine; results must not depend on the thread count). OpenBLAS reads
// OPENBLAS_NUM_THREADS when it loads, so set it through its API before any test runs.
#include <gtest/gtest.h>

#include "strata/kernels/cpu/matmul.hpp"

namespace {
class OneBlasThread : public ::testing::Environment {
 public:
  void SetUp() override { strata::kernels::cpu::set_blas_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new OneBlasThread);
}  // namespace
