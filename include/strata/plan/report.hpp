// What `strata plan` prints: the ranked table, the breakdown of one layout (--explain), the
// launch command for the best layout, and the same as JSON (--json).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "strata/plan/search.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {

// Header lines: model, cluster, batch, token target.
std::string describe_request(const PlanRequest& request);

// One row per candidate (the first `top`; 0: all).
Table layout_table(const PlanResult& result, int top);

// Memory and time breakdown of one layout, every term on its own line.
std::string explain(const PlanRequest& request, const Candidate& candidate);

// `sbatch --nodes=N ... --export=ALL,CONFIG=JOB slurm/pretrain.sh --set ...` for a candidate.
std::string launch_command(const PlanRequest& request, const Candidate& candidate,
                           const std::string& model_path, const std::string& job_path);

nlohmann::json to_json(const Candidate& candidate);
nlohmann::json to_json(const PlanRequest& request, const PlanResult& result, int top);

}  // namespace strata::plan
