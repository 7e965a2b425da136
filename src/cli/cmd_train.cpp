#include <mpi.h>

#include "commands.hpp"
#include "strata/config/load.hpp"
#include "strata/train/signals.hpp"
#include "strata/train/trainer.hpp"

#include <cstdio>

namespace strata::cli {

Action add_train_command(CLI::App& app, const FaultHooks* faults) {
  auto* cmd = app.add_subcommand("train", "Train a model: strata train --config FILE [--set key=value ...]");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("-c,--config", *config_path, "Run config (YAML), e.g. configs/demo.yaml")->required();
  cmd->add_option("--set", *overrides,
                  "Override a config key, e.g. --set train.steps=100 (repeatable; later wins)")
      ->allow_extra_args(false);
  auto dry = std::make_shared<bool>(false);
  auto ranks = std::make_shared<int>(0);
  auto rank = std::make_shared<int>(0);
  cmd->add_flag(
      "--dry-run", *dry,
      "Plan the job without running it (no data, device or other ranks): the grid, what the backend "
      "supports, each stage's memory, one rank's engine plan");
  cmd->add_option("--ranks", *ranks, "With --dry-run: the job's ranks (default: tp x pp x dp, dp 0 as 1)");
  cmd->add_option("--rank", *rank, "With --dry-run: the rank whose engine plan is printed")
      ->capture_default_str();
  return [config_path, overrides, dry, ranks, rank, faults] {
    const config::JobConfig job = config::load_job_config(*config_path, *overrides);
    if (*dry) {
      std::printf("%s", train::dry_run(job, *ranks, *rank).c_str());
      return 0;
    }
    const train::TrainSummary summary = train::run_training(job, MPI_COMM_WORLD, faults);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (summary.stop_signal != 0 && rank == 0)
      std::printf("strata: stopped at step %ld on signal %s; checkpoint saved to %s\n", summary.last_step,
                  train::signal_name(summary.stop_signal), summary.last_checkpoint.c_str());
    return 0;
  };
}

}  // namespace strata::cli
