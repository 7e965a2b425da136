// strata plan: predict memory, step time and MFU of every layout before launch; pick the best.
//
//   strata plan --model llama2_70b --gpu h100 --gpus 512 [--global-batch 1024] [--tokens 2T]
//               [--explain tp8-pp4-dp16-v1-mb1-z1-sp-rfull] [--json] [--top 10] [--ranks-per-node N]
//   strata plan --calibrate RUN_DIR... --gpu local [--fit sustained_fraction,...] [--time cpu]
//               [--out local.calibrated.yaml] [--note TEXT]
//
// Or check one run config's own layout at a size (plan/study.hpp; what slurm/scaling_study.sh
// asks before it submits a point): exit status 0 when it can run, 3 when refused.
//
//   strata plan --config configs/pretrain_tiny.yaml [--set k=v ...] --gpus 8 [--gpus-per-node 2]
//               [--cluster local] [--json]
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "strata/config/cluster.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/calibrate.hpp"
#include "strata/plan/report.hpp"
#include "strata/plan/study.hpp"

namespace strata::cli {

namespace {
struct PlanOptions {
  std::string model, cluster, explain, job = "configs/demo.yaml", tokens, recompute = "none,full";
  std::string config;             // --config: check this run config's own layout
  std::vector<std::string> sets;  // its --set overrides
  int gpus = 0, global_batch = 0, seq_len = 0, top = 10, ranks_per_node = 0, gpus_per_node = 0;
  int max_cp = 1;  // context-parallel sizes searched: 1, 2, 4 .. max_cp
  double max_spread = 0;
  bool json = false;
  std::vector<std::string> calibrate;  // run folders
  std::string fit = "sustained_fraction", time = "wall", out, note;
};

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// strata plan --calibrate: fit the cluster file's constants to the runs, report residuals and
// leave-one-out errors, write the calibrated cluster file.
int run_calibrate(const PlanOptions& o) {
  const std::string cluster_path = config::find_named_config(o.cluster, "clusters", "cluster");
  const config::ClusterConfig cluster = config::load_cluster_config(cluster_path);
  if (o.time != "wall" && o.time != "cpu")
    throw make_error("--time: expected wall (step_ms) or cpu (cpu_ms over the cores used), got '", o.time,
                     "'");
  const plan::TimeBase base = o.time == "cpu" ? plan::TimeBase::cpu : plan::TimeBase::wall;
  std::vector<plan::CalibrationRun> runs;
  for (const std::string& dir : o.calibrate) runs.push_back(plan::read_calibration_run(dir, cluster, base));
  runs = plan::merge_repeats(runs);  // folders of the same configuration are repeats of one run
  std::vector<std::string> dropped;
  if (o.max_spread > 0) runs = plan::reproducible_runs(runs, o.max_spread, &dropped);
  const plan::Calibration c = plan::calibrate(cluster, runs, split_list(o.fit));
  std::cout << "cluster " << cluster.name << " (" << cluster_path << "), measured: "
            << (base == plan::TimeBase::cpu ? "CPU time per step over the cores used" : "wall-clock step_ms")
            << ", median of the steps after warm-up\n";
  for (const std::string& d : dropped)
    std::cout << "not fitted: " << d << " - its repeats disagree by more than --max-spread\n";
  std::cout << plan::calibration_report(c);
  std::ifstream in(cluster_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string out = o.out.empty() ? cluster.name + ".calibrated.yaml" : o.out;
  const std::string calibrated = plan::calibrated_cluster_text(text, c, o.note);
  {
    std::ofstream f(out);
    if (!(f << calibrated)) throw make_error("cannot write the calibrated cluster file '", out, "'");
  }
  config::load_cluster_config(out);  // what was written loads back
  std::cout << "wrote " << out << "\n";
  return 0;
}

// Exit status of a refused point (bad input is 1, as everywhere).
constexpr int kRefused = 3;

int run_check(const PlanOptions& o) {
  const config::JobConfig job = config::load_job_config(o.config, o.sets);
  const std::string cluster_path = config::find_named_config(
      o.cluster.empty() ? plan::default_cluster_for(job) : o.cluster, "clusters", "cluster");
  const config::ClusterConfig cluster = config::load_cluster_config(cluster_path);
  const int per_node = o.gpus_per_node > 0 ? o.gpus_per_node : std::min(o.gpus, cluster.gpus_per_node);
  const plan::PointCheck pc = plan::check_point(job, o.gpus, per_node, cluster);
  if (o.json) {
    nlohmann::json j = plan::to_json(pc);
    j["config"] = o.config;
    j["cluster_file"] = cluster_path;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "config  " << o.config << "; cluster file " << cluster_path << "\n" << plan::describe(pc);
  }
  return pc.ok() ? 0 : kRefused;
}

std::vector<plan::Recompute> parse_recompute(const std::string& list) {
  std::vector<plan::Recompute> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "none")
      out.push_back(plan::Recompute::none);
    else if (item == "selective" || item == "sel")
      out.push_back(plan::Recompute::selective);
    else if (item == "full")
      out.push_back(plan::Recompute::full);
    else
      throw make_error("--recompute: expected a list of none|selective|full, got '", item, "'");
  }
  if (out.empty()) throw make_error("--recompute: empty list");
  return out;
}

int run_plan(const PlanOptions& o) {
  if (!o.calibrate.empty()) {
    if (o.cluster.empty())
      throw make_error("--calibrate needs --cluster (the cluster file the runs are fitted to)");
    return run_calibrate(o);
  }
  if (o.gpus <= 0) throw make_error("--gpus is required (or --calibrate RUN_DIR...)");
  if (!o.config.empty()) {
    if (!o.model.empty() || !o.explain.empty())
      throw make_error(
          "--config checks the run config's own model and layout: leave out --model and --explain");
    return run_check(o);
  }
  if (o.model.empty())
    throw make_error(
        "--model is required (or --config to check a run config's layout, or "
        "--calibrate RUN_DIR...)");
  if (o.cluster.empty()) throw make_error("--cluster is required (a name in configs/clusters, or a file)");
  if (!o.sets.empty() || o.gpus_per_node > 0) throw make_error("--set and --gpus-per-node go with --config");
  const std::string model_path = config::find_named_config(o.model, "models", "model");
  const std::string cluster_path = config::find_named_config(o.cluster, "clusters", "cluster");
  plan::PlanRequest r;
  const config::ModelConfig model = config::load_model_config(model_path);
  if (o.seq_len > model.max_seq_len)
    throw make_error("--seq-len ", o.seq_len, " exceeds the model's max_seq_len ", model.max_seq_len, " (",
                     model_path, ")");
  r.workload = plan::Workload::of(model, o.seq_len);
  r.cluster = config::load_cluster_config(cluster_path);
  if (o.ranks_per_node > 0) r.cluster = plan::share_node(r.cluster, o.ranks_per_node);
  r.gpus = o.gpus;
  // Default batch: about 4M tokens per step (LLaMA-2, Touvron et al. 2023 sec. 2.2).
  r.global_batch =
      o.global_batch > 0 ? o.global_batch : std::max(1, int(std::lround(4194304.0 / r.workload.seq_len)));
  // Default target: 20 tokens per parameter (Hoffmann et al. 2022).
  r.tokens =
      o.tokens.empty() ? 20.0 * double(r.workload.counts.total) : plan::parse_count(o.tokens, "--tokens");
  r.recompute = parse_recompute(o.recompute);
  r.max_cp = o.max_cp;

  if (!o.explain.empty()) {
    const plan::Layout l = plan::parse_layout(o.explain, r.gpus, r.global_batch, r.cluster.precision);
    if (const std::string why = plan::layout_unsupported(r, l); !why.empty())
      throw make_error("layout '", o.explain, "': ", why);
    const plan::Candidate c = plan::evaluate(r, l);
    if (o.json)
      std::cout << plan::to_json(c).dump(2) << "\n";
    else
      std::cout << plan::describe_request(r) << "\n" << plan::explain(r, c);
    return 0;
  }

  const plan::PlanResult result = plan::search_layouts(r);
  const plan::Candidate& best = result.fitting.front();
  if (o.json) {
    nlohmann::json j = plan::to_json(r, result, o.top);
    j["command"] = plan::launch_command(r, best, model_path, o.job);
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << plan::describe_request(r) << "\n"
            << result.enumerated << " layouts enumerated, " << result.over_memory << " over memory, "
            << result.fitting.size() << " fit; fastest first:\n\n"
            << plan::layout_table(result, o.top).render(plan::TableFormat::text) << "\n"
            << "best: " << plan::to_string(best.layout) << " (strata plan ... --explain "
            << plan::to_string(best.layout) << " for the breakdown)\n"
            << plan::launch_command(r, best, model_path, o.job) << "\n";
  return 0;
}
}  // namespace

Action add_plan_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan",
                                 "Predict memory, step time and MFU of every layout; print the best and its "
                                 "launch command");
  auto o = std::make_shared<PlanOptions>();
  cmd->add_option("-m,--model", o->model, "Model file or name in configs/models (llama2_70b)");
  cmd->add_option(
      "--cluster,--gpu", o->cluster,
      "Cluster file or name in configs/clusters (h100, a100_sxm_80gb, local); with --config the default "
      "is its hardware.cluster, else h100_sxm_80gb (cuda) or cpu_node (cpu)");
  cmd->add_option(
      "--config", o->config,
      "Check this run config's own layout on --gpus ranks instead of searching: the layout and batch "
      "divide, memory fits; its predicted step time (exit status 3 when refused)");
  cmd->add_option("--set", o->sets, "With --config: override a key, e.g. --set parallel.tp=2 (repeatable)");
  cmd->add_option("--gpus-per-node", o->gpus_per_node,
                  "With --config: ranks per node (default: the cluster's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gpus", o->gpus, "Number of GPUs (ranks)")->check(CLI::PositiveNumber);
  cmd->add_option("--ranks-per-node", o->ranks_per_node,
                  "CPU clusters: ranks sharing one node's slots (e.g. 8 ranks on a 2-core machine)")
      ->check(CLI::PositiveNumber);
  cmd->add_option(
         "--calibrate", o->calibrate,
         "Fit the cluster file to these run folders (metrics.jsonl, config.yaml) and write it calibrated")
      ->expected(1, -1);
  cmd->add_option("--fit", o->fit,
                  "Constants --calibrate fits (comma-separated): sustained_fraction, "
                  "small_gemm_width, attention_fraction, elementwise_fraction, overlap_efficiency")
      ->capture_default_str();
  cmd->add_option("--time", o->time,
                  "--calibrate: wall (step_ms) or cpu (cpu_ms over the cores used; shared machines)")
      ->capture_default_str();
  cmd->add_option(
         "--max-spread", o->max_spread,
         "--calibrate: leave out runs whose repeats disagree by more than this ((max - min) / median of "
         "their medians, e.g. 0.3); 0: keep all")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out,
                  "--calibrate: the calibrated cluster file to write (default <name>.calibrated.yaml)");
  cmd->add_option("--note", o->note, "--calibrate: a note recorded with the fit (runs, commit, machine)");
  cmd->add_option("--global-batch", o->global_batch, "Sequences per optimizer step (default: ~4M tokens)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seq-len", o->seq_len, "Sequence length (default: the model's max_seq_len)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tokens", o->tokens, "Token target of the run, e.g. 2T (default: 20 x parameters)");
  cmd->add_option("--recompute", o->recompute, "Recomputation choices to search: none,selective,full")
      ->capture_default_str();
  cmd->add_option(
         "--max-cp", o->max_cp,
         "Context parallelism to search: cp = 1, 2, 4, .. up to this, each by the ring and by Ulysses "
         "all-to-all where the heads split (GPUs: Ulysses only)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--top", o->top, "Rows to print (0: all)")->capture_default_str();
  cmd->add_option("--explain", o->explain,
                  "Memory and time breakdown of one layout, e.g. tp8-pp4-dp16-mb1-z1-sp-rfull");
  cmd->add_option("--job", o->job, "Job config the printed train command starts from")->capture_default_str();
  cmd->add_flag("--json", o->json, "Machine-readable output");
  return [o] { return run_plan(*o); };
}

}  // namespace strata::cli
