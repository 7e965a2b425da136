// One point of a scaling study, checked and predicted before it is submitted
// (`strata plan --config JOB --gpus N --gpus-per-node P`, called by slurm/scaling_study.sh for
// every point), and the same prediction next to a finished run in `strata report scaling`.
//
// A point is a run config trained on `ranks` ranks, `ranks_per_node` of them per node. It is
// refused, with every reason, when
//   - the layout does not divide: tp x pp x dp != ranks (dp 0 is derived as ranks / (tp x pp));
//   - the batch does not divide: the global batch is not a whole number of micro-batches per DP
//     rank (config::resolve_batch, the trainer's own rule and message);
//   - it does not fit: the planner's memory of the most loaded stage (plan/memory.hpp) exceeds
//     the cluster's memory_gib per rank;
//   - the cluster file has no peak for the job's precision (fp32 on CPU, bf16 on GPU).
// Notes that do not refuse: tensor-parallel groups that span nodes (correct, but every layer's
// all-reduce then crosses the network).
//
// The prediction is plan::evaluate() of the job's own layout (not the planner's favourite) on
// the cluster file, with the cluster's gpus_per_node replaced by the point's ranks per node, so
// that the planner's intra/inter-node links follow the allocation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"
#include "strata/config/config.hpp"
#include "strata/plan/search.hpp"

namespace strata::plan {

struct PointCheck {
  int ranks = 1, ranks_per_node = 1, nodes = 1;
  int tp = 1, pp = 1, dp = 0;  // dp 0: could not be derived
  int global_batch = 0, micro_batches = 0;
  std::vector<std::string> problems;  // why the point cannot run; empty: it can
  std::vector<std::string> notes;     // worth knowing, not refusing
  bool predicted = false;             // the layout resolved and the planner ran
  PlanRequest request;                // what the planner was asked (cluster adjusted as above)
  Candidate prediction;               // memory and step time of the job's layout
  bool ok() const { return problems.empty(); }
  // Communication share of the predicted step, comparable with the measured one
  // (ScalingRun::comm_share): time waiting on pipeline neighbours (bubble and transfers) and
  // on the exposed data-parallel reduction, over the step. TP collectives run inside the layers
  // and count as compute on both sides.
  double predicted_comm_share() const;
};

// The job's precision: fp32 on CPU, bf16 on GPU.
config::Precision job_precision(const config::JobConfig& job);

// The cluster file a job is checked against when none is named: hardware.cluster, else
// h100_sxm_80gb for hardware.device: cuda and cpu_node for cpu. A name or a path.
std::string default_cluster_for(const config::JobConfig& job);

PointCheck check_point(const config::JobConfig& job, int ranks, int ranks_per_node,
                       const config::ClusterConfig& cluster);

nlohmann::json to_json(const PointCheck& check);
// Text for `strata plan --config`: "ok: ..." or one "refused: <reason>" line per problem,
// "note: ..." lines, then the prediction's breakdown.
std::string describe(const PointCheck& check);

}  // namespace strata::plan
