// Unit tests that run the trainer or a checkpoint need MPI: one rank here (an MPI singleton),
// initialised once per test program and finalised at its end. Include it wherever a test needs
// MPI: the inline variable registers the environment once per program.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

namespace strata::test {

class MpiEnvironment : public testing::Environment {
 public:
  void SetUp() override {
    int initialized = 0;
    MPI_Initialized(&initialized);
    int provided = 0;  // as strata's main: a background checkpoint writer makes MPI calls too
    if (!initialized) MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  }
  void TearDown() override { MPI_Finalize(); }
};
[[maybe_unused]] inline testing::Environment* const mpi_env =
    testing::AddGlobalTestEnvironment(new MpiEnvironment);

}  // namespace strata::test
