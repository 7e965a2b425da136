// strata's command line: parse it, initialise MPI then Kokkos, run one subcommand, finalise in
// reverse. Any exception ends the job: it is reported with the rank, and with more than one
// rank MPI_Abort takes the others down instead of letting them hang (DESIGN.md invariant 5).
#include <mpi.h>

#include <Kokkos_Core.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "commands.hpp"
#include "strata/cli/run_cli.hpp"
#include "strata/config.hpp"
#include "strata/core/error.hpp"
#include "strata/kernels/cpu/matmul.hpp"

namespace strata::cli {

int run_cli(int argc, char** argv, const FaultHooks* faults) {
  strata::kernels::cpu::ensure_blas_environment(argv);  // may re-exec: before MPI and threads
  CLI::App app{"strata: pre-train transformer language models on CPU and GPU clusters"};
  app.set_version_flag("--version", std::string("strata ") + strata::build::version);
  app.require_subcommand(1);
  // (subcommand, action): each subcommand registers itself and returns what to run.
  const std::pair<const char*, strata::cli::Action> commands[] = {
      {"train", strata::cli::add_train_command(app, faults)},
      {"info", strata::cli::add_info_command(app)},
      {"prepare", strata::cli::add_prepare_command(app)},
      {"data", strata::cli::add_data_command(app)},
      {"quality", strata::cli::add_quality_command(app)},
      {"ckpt", strata::cli::add_ckpt_command(app)},
      {"tokenizer", strata::cli::add_tokenizer_command(app)},
      {"plan", strata::cli::add_plan_command(app)},
      {"budget", strata::cli::add_budget_command(app)},
      {"eval", strata::cli::add_eval_command(app)},
      {"generate", strata::cli::add_generate_command(app)},
      {"report", strata::cli::add_report_command(app)},
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  strata::cli::Action action;
  for (const auto& [name, command] : commands)
    if (app.got_subcommand(name)) action = command;

  // MPI_THREAD_MULTIPLE: the collective watchdog's thread reads the peers' progress windows
  // (one-sided) while the main thread sits in a stuck collective (comm/mpi_communicator.hpp).
  // With less, hang reports name the collective but not the ranks that did not arrive.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  int rc = 0;
  try {
    Kokkos::ScopeGuard kokkos;
    rc = action();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: error (rank %d of %d): %s\n", world_rank, world_size, e.what());
    std::fflush(stderr);
    if (world_size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}

}  // namespace strata::cli
