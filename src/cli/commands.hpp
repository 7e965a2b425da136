// The subcommands of `strata`. Each registers its options on the CLI11 app and returns the
// action to run after parsing.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

#include "strata/core/faults.hpp"

namespace strata::cli {

using Action = std::function<int()>;

Action add_train_command(CLI::App& app, const FaultHooks* faults);  // faults: tests only (core/faults.hpp)
Action add_info_command(CLI::App& app);
Action add_tokenizer_command(CLI::App& app);
Action add_plan_command(CLI::App& app);
Action add_budget_command(CLI::App& app);
Action add_prepare_command(CLI::App& app);   // strata prepare
Action add_data_command(CLI::App& app);      // strata data inspect
Action add_eval_command(CLI::App& app);      // strata eval
Action add_generate_command(CLI::App& app);  // strata generate
Action add_report_command(CLI::App& app);    // strata report scaling|run
Action add_ckpt_command(CLI::App& app);      // strata ckpt inspect|verify|export-hf
Action add_quality_command(CLI::App& app);   // strata quality train|score

}  // namespace strata::cli
