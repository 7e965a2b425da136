// The command line of `strata`, as a function: src/cli/main.cpp calls it without fault hooks;
// the test-only binary strata-faults (tests/tools/strata_faults.cpp) with the hooks it read
// from its environment (core/faults.hpp).
#pragma once
#include "strata/core/faults.hpp"

namespace strata::cli {

// Parses the command line, initialises MPI then Kokkos, runs one subcommand and finalises in
// reverse; returns the process's exit code. `faults` reach `strata train`'s trainer.
int run_cli(int argc, char** argv, const FaultHooks* faults = nullptr);

}  // namespace strata::cli
