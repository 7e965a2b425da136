#include <mpi.h>

#include "commands.hpp"
#include "strata/config/load.hpp"
#include "strata/train/trainer.hpp"

namespace strata::cli {

Action add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model: strata train --config FILE [--set key=value ...]");
  auto config_path = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("-c,--config", *config_path, "Run config (YAML), e.g. configs/demo.yaml")->required();
  cmd->add_option("--set", *overrides,
                  "Override a config key, e.g. --set train.steps=100 (repeatable; later wins)")
      ->allow_extra_args(false);
  return [config_path, overrides] {
    const config::JobConfig job = config::load_job_config(*config_path, *overrides);
    train::run_training(job, MPI_COMM_WORLD);
    return 0;
  };
}

}  // namespace strata::cli
