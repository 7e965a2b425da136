// A scaling-study point checked and predicted before submission (plan/study.hpp).
#include "strata/plan/study.hpp"

#include <sstream>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/batch.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/report.hpp"
#include "strata/plan/step_time.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {

namespace {
constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
}

config::Precision job_precision(const config::JobConfig& job) {
  return job.hardware.device == config::DeviceKind::cuda ? config::Precision::bf16 : config::Precision::fp32;
}

std::string default_cluster_for(const config::JobConfig& job) {
  if (!job.hardware.cluster.empty()) return job.hardware.cluster;
  return job.hardware.device == config::DeviceKind::cuda ? "h100_sxm_80gb" : "cpu_node";
}

double PointCheck::predicted_comm_share() const {
  if (!predicted || prediction.time.total <= 0) return 0.0;
  const StepTime& t = prediction.time;
  return (t.bubble + t.pp_comm + t.dp_exposed) / t.total;
}

PointCheck check_point(const config::JobConfig& job, int ranks, int ranks_per_node,
                       const config::ClusterConfig& cluster) {
  if (ranks < 1 || ranks_per_node < 1)
    throw make_error("a scaling point needs ranks >= 1 and ranks per node >= 1 (got ", ranks, " and ",
                     ranks_per_node, ")");
  const config::ParallelConfig& p = job.parallel;
  PointCheck pc;
  pc.ranks = ranks;
  pc.ranks_per_node = ranks_per_node;
  pc.nodes = (ranks + ranks_per_node - 1) / ranks_per_node;
  pc.tp = p.tp;
  pc.pp = p.pp;

  // 1. The layout divides the ranks (the rank grid's own rule and message).
  try {
    pc.dp = comm::resolve_grid(ranks, p.tp, p.pp, p.dp, p.cp).dp;
  } catch (const Error& e) {
    pc.problems.push_back(std::string("layout: ") + e.what());
  }
  // 2. The batch divides over the DP ranks (the trainer's rule and message).
  config::BatchShape batch;
  if (pc.dp > 0) {
    try {
      batch = config::resolve_batch(p, pc.dp);
      pc.global_batch = batch.global;
      pc.micro_batches = batch.microbatches;
    } catch (const Error& e) {
      pc.problems.push_back(std::string("batch: ") + e.what());
    }
  }
  if (p.tp > ranks_per_node || ranks_per_node % p.tp != 0)
    pc.notes.push_back("tensor-parallel groups of " + std::to_string(p.tp) + " ranks span nodes of " +
                       std::to_string(ranks_per_node) +
                       " ranks: every layer's all-reduce crosses the network");
  if (!p.layers_per_stage.empty())
    pc.notes.push_back(
        "parallel.layers_per_stage is set: the planner assumes layers split evenly over stages");

  // 3. The cluster has this job's peak; the layout fits in its memory.
  const config::Precision precision = job_precision(job);
  config::ClusterConfig c = cluster;
  if (ranks_per_node > cluster.gpus_per_node) {
    // CPU ranks sharing a node's cores get a share of its peak, bandwidth and memory (the
    // planner's shared-node model); GPUs cannot be shared.
    try {
      c = share_node(cluster, ranks_per_node);
    } catch (const Error& e) {
      pc.problems.push_back(std::string("cluster: ") + e.what());
      return pc;
    }
  }
  c.precision = precision;
  c.gpus_per_node = ranks_per_node;
  if (c.peak_tflops() <= 0) {
    pc.problems.push_back("cluster: " + cluster.name + " has no peak_tflops_" + config::to_string(precision) +
                          " (this job trains in " + config::to_string(precision) + ")");
    return pc;
  }
  if (pc.dp == 0 || pc.global_batch == 0) return pc;

  PlanRequest& r = pc.request;
  r.workload = Workload::of(job.model, job.train.seq_len);
  r.cluster = c;
  r.gpus = ranks;
  r.global_batch = batch.global;
  r.tokens = double(job.train.steps) * batch.global * r.workload.seq_len;
  Layout l;
  l.tp = p.tp, l.pp = p.pp, l.dp = pc.dp, l.cp = p.cp;
  l.ulysses = p.cp_mode == config::CpMode::ulysses;
  l.vpp = p.virtual_stages;
  l.micro_batch = batch.micro;
  l.micro_batches = batch.microbatches;
  l.zero = p.zero_stage;
  l.sequence_parallel = p.sequence_parallel;
  l.gpipe = p.schedule == config::PipelineSchedule::gpipe;
  l.zb = p.schedule == config::PipelineSchedule::zb_h1;
  l.recompute = job.model.recompute == config::RecomputeKind::full ? Recompute::full : Recompute::none;
  l.precision = precision;
  pc.prediction = evaluate(r, l);
  pc.predicted = true;
  if (!pc.prediction.fits)
    pc.problems.push_back("memory: the planner predicts " + fmt("%.3g", pc.prediction.memory.total() / GiB) +
                          " GiB per rank (stage " + std::to_string(pc.prediction.memory.stage) +
                          "), over the " + fmt("%.3g", c.memory_gib) + " GiB of " + c.gpu + " (cluster " +
                          cluster.name + ", memory_gib)");
  return pc;
}

nlohmann::json to_json(const PointCheck& pc) {
  nlohmann::json j = {{"ok", pc.ok()},
                      {"problems", pc.problems},
                      {"notes", pc.notes},
                      {"nodes", pc.nodes},
                      {"ranks", pc.ranks},
                      {"ranks_per_node", pc.ranks_per_node},
                      {"tp", pc.tp},
                      {"pp", pc.pp},
                      {"dp", pc.dp},
                      {"global_batch", pc.global_batch},
                      {"micro_batches", pc.micro_batches}};
  if (pc.predicted) {
    j["cluster"] = pc.request.cluster.name;
    j["prediction"] = to_json(pc.prediction);
    j["prediction"]["comm_share"] = pc.predicted_comm_share();
  }
  return j;
}

std::string describe(const PointCheck& pc) {
  std::ostringstream os;
  os << "point: " << pc.nodes << " node" << (pc.nodes == 1 ? "" : "s") << " x " << pc.ranks_per_node
     << " ranks = " << pc.ranks << " ranks; layout tp " << pc.tp << " x pp " << pc.pp << " x dp "
     << (pc.dp > 0 ? std::to_string(pc.dp) : std::string("?"));
  if (pc.global_batch > 0)
    os << "; global batch " << pc.global_batch << " (" << pc.micro_batches << " micro-batches per DP rank)";
  os << "\n";
  if (pc.ok()) os << "ok: the point can run\n";
  for (const auto& p : pc.problems) os << "refused: " << p << "\n";
  for (const auto& n : pc.notes) os << "note: " << n << "\n";
  if (pc.predicted) {
    os << "\n" << describe_request(pc.request) << "\n" << explain(pc.request, pc.prediction);
    os << "communication share (pipeline waits and bubble, exposed data-parallel comm) "
       << fmt("%.1f%%", 100 * pc.predicted_comm_share()) << "\n";
  }
  return os.str();
}

}  // namespace strata::plan
