#include "strata/plan/scaling.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/study.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {

namespace fs = std::filesystem;

std::string ScalingRun::layout() const {
  return "tp" + std::to_string(tp) + "-pp" + std::to_string(pp) + "-dp" + std::to_string(dp);
}

namespace {

int yaml_int(const YAML::Node& root, const char* section, const char* key, const fs::path& file) {
  const YAML::Node n = root[section][key];
  if (!n || !n.IsScalar()) throw make_error(file.string(), ": ", section, ".", key, ": missing");
  try {
    return n.as<int>();
  } catch (const YAML::Exception&) {
    throw make_error(file.string(), ": ", section, ".", key, ": expected an integer, got '", n.Scalar(), "'");
  }
}

std::string pct(double x) { return fmt("%.1f%%", 100 * x); }

// A line of text trimmed of surrounding blanks and cut to `max` characters.
std::string trim(const std::string& s, std::size_t max = 300) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  std::string t = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  if (t.size() > max) t = t.substr(0, max - 3) + "...";
  return t;
}

}  // namespace

// metrics.jsonl: the last record of each step number (validation and straggler records, which
// carry valid_loss or stragglers instead of the step's timings, are skipped).
std::map<long, StepRecord> read_step_metrics(const std::string& path) {
  const fs::path file(path);
  std::ifstream in(file);
  if (!in)
    throw make_error("cannot open '", file.string(), "' (a run folder holds metrics.jsonl, config.yaml)");
  std::map<long, StepRecord> steps;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      if ((j.contains("valid_loss") || j.contains("stragglers")) && !j.contains("step_ms")) continue;
      StepRecord r;
      r.tokens_per_s = j.at("tokens_per_s").get<double>();
      r.step_ms = j.at("step_ms").get<double>();
      r.tflops = j.at("tflops").get<double>();
      // null or absent: not reported (the peak was unknown or exceeded).
      r.mfu = j.contains("mfu") && j["mfu"].is_number() ? j["mfu"].get<double>() : 0.0;
      r.cpu_ms = j.value("cpu_ms", -1.0);
      if (j.contains("pipeline_wait_ms") && j.contains("dp_wait_ms"))
        r.wait_ms = j["pipeline_wait_ms"].get<double>() + j["dp_wait_ms"].get<double>();
      steps[j.at("step").get<long>()] = r;
    } catch (const nlohmann::json::exception& e) {
      throw make_error(file.string(), ":", lineno, ": not a step record: ", e.what());
    }
  }
  if (steps.empty()) throw make_error(file.string(), ": no steps recorded");
  return steps;
}

ScalingRun read_scaling_run(const std::string& dir, int skip_steps) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw make_error("run folder '", dir, "' does not exist");
  ScalingRun run;
  run.dir = dir;
  run.name = (d.filename().empty() ? d.parent_path() : d).filename().string();

  // config.yaml: read with yaml-cpp directly (not the full schema), so that runs written by
  // an older strata still load.
  const fs::path cfg_file = d / "config.yaml";
  if (!fs::exists(cfg_file))
    throw make_error("'", cfg_file.string(), "' is missing (written by strata train)");
  YAML::Node cfg;
  try {
    cfg = YAML::LoadFile(cfg_file.string());
  } catch (const YAML::Exception& e) {
    throw make_error(cfg_file.string(), ": ", e.what());
  }
  run.tp = yaml_int(cfg, "parallel", "tp", cfg_file);
  run.pp = yaml_int(cfg, "parallel", "pp", cfg_file);
  const int dp = yaml_int(cfg, "parallel", "dp", cfg_file);
  run.seq_len = yaml_int(cfg, "train", "seq_len", cfg_file);
  if (cfg["train"]["steps"]) run.steps_planned = yaml_int(cfg, "train", "steps", cfg_file);

  // job.json (slurm/launch.sh): the allocation.
  const fs::path job_file = d / "job.json";
  if (fs::exists(job_file)) {
    std::ifstream in(job_file);
    try {
      const auto j = nlohmann::json::parse(in);
      run.nodes = j.at("nodes").get<int>();
      run.ranks = j.at("ranks").get<int>();
      run.ranks_per_node = j.value("ranks_per_node", (run.ranks + run.nodes - 1) / std::max(1, run.nodes));
      run.tag = j.value("tag", "");
      run.scaling = j.value("scaling", "");
      run.log = j.value("log", "");
      if (j.contains("exit_code") && j["exit_code"].is_number_integer())
        run.exit_code = j["exit_code"].get<int>();
    } catch (const nlohmann::json::exception& e) {
      throw make_error(job_file.string(), ": ", e.what());
    }
  } else if (dp > 0) {
    run.ranks = run.tp * run.pp * dp;
    run.ranks_per_node = run.ranks;
  } else {
    throw make_error(dir, ": cannot tell the number of ranks: no job.json (slurm/launch.sh writes it) and ",
                     "parallel.dp is 0 (derived) in config.yaml");
  }
  if (run.ranks % (run.tp * run.pp) != 0)
    throw make_error(dir, ": ", run.ranks, " ranks is not a multiple of tp x pp = ", run.tp * run.pp);
  run.dp = dp > 0 ? dp : run.ranks / (run.tp * run.pp);

  const std::map<long, StepRecord> steps = read_step_metrics((d / "metrics.jsonl").string());
  const long n = long(steps.size());
  const long skip = skip_steps >= 0 ? skip_steps : (n < 3 ? 0 : std::max(1L, n / 10));
  if (skip >= n)
    throw make_error(dir, ": ", n, " steps recorded, all skipped as warm-up (--skip ", skip, ")");
  double tokens = 0, seconds = 0, flop_time = 0, mfu_time = 0, wait_s = 0;
  bool mfu_known = true, waits_known = true;
  long i = 0;
  for (const auto& [step, r] : steps) {
    if (i++ < skip) continue;
    const double s = r.step_ms * 1e-3;
    tokens += r.tokens_per_s * s;
    seconds += s;
    flop_time += r.tflops * s;
    mfu_time += r.mfu * s;
    mfu_known = mfu_known && r.mfu > 0;
    waits_known = waits_known && r.wait_ms >= 0;
    wait_s += std::max(0.0, r.wait_ms) * 1e-3;
  }
  run.last_step = steps.rbegin()->first;
  if (seconds <= 0) throw make_error(dir, ": the measured steps take no time");
  run.steps_measured = n - skip;
  run.step_ms = 1e3 * seconds / double(run.steps_measured);
  run.tokens_per_s = tokens / seconds;
  run.tflops_per_rank = flop_time / seconds;
  run.mfu = mfu_known ? mfu_time / seconds : 0.0;
  run.comm_share = waits_known ? wait_s / seconds : -1.0;
  run.global_batch = tokens / double(run.steps_measured) / double(run.seq_len);
  return run;
}

ScalingReport make_scaling_report(std::vector<ScalingRun> runs) {
  if (runs.empty()) throw make_error("report scaling: no run folders");
  std::stable_sort(runs.begin(), runs.end(), [](const ScalingRun& a, const ScalingRun& b) {
    return a.ranks != b.ranks ? a.ranks < b.ranks : a.name < b.name;
  });
  ScalingReport report;
  const ScalingRun& base = runs.front();
  for (auto& r : runs) {
    ScalingRow row;
    row.speedup = r.tokens_per_s / base.tokens_per_s;
    row.efficiency = row.speedup / (double(r.ranks) / double(base.ranks));
    row.run = std::move(r);
    report.rows.push_back(std::move(row));
  }
  std::set<std::string> modes;
  for (const auto& row : report.rows) modes.insert(row.run.scaling);
  if (modes.size() == 1 && !modes.begin()->empty()) {
    report.mode = *modes.begin();
  } else {
    // Same global batch everywhere (within rounding): strong; otherwise weak when the batch
    // grows in proportion to the ranks.
    bool same = true, proportional = true;
    const auto& b = report.rows.front().run;
    for (const auto& row : report.rows) {
      same = same && std::abs(row.run.global_batch - b.global_batch) < 0.5;
      const double want = b.global_batch * row.run.ranks / b.ranks;
      proportional = proportional && std::abs(row.run.global_batch - want) < 0.5;
    }
    report.mode = same ? "strong" : proportional ? "weak" : "mixed";
  }
  return report;
}

bool ScalingReport::has_predictions() const {
  for (const auto& row : rows)
    if (row.predicted.valid) return true;
  return false;
}

std::string first_error_line(const std::string& log_path) {
  if (log_path.empty()) return "";
  std::ifstream in(log_path);
  if (!in) return "";
  std::string line, strata_error, srun_error, any_error;
  while (std::getline(in, line)) {
    if (strata_error.empty() && line.find("strata: error") != std::string::npos) strata_error = line;
    if (srun_error.empty() && line.find("srun: error") != std::string::npos) srun_error = line;
    if (any_error.empty()) {
      std::string lower = line;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return char(std::tolower(c)); });
      if (lower.find("error") != std::string::npos) any_error = line;
    }
  }
  return trim(!strata_error.empty() ? strata_error : !srun_error.empty() ? srun_error : any_error);
}

ScalingPrediction predict_run(const ScalingRun& run, const config::ClusterConfig& cluster) {
  ScalingPrediction p;
  config::JobConfig job;
  try {
    job = config::load_job_config((fs::path(run.dir) / "config.yaml").string());
  } catch (const std::exception& e) {
    p.note = std::string("config.yaml does not load as a job config: ") + e.what();
    return p;
  }
  const PointCheck pc = check_point(job, run.ranks, run.ranks_per_node, cluster);
  if (!pc.predicted) {
    p.note = pc.problems.empty() ? "no prediction" : pc.problems.front();
    return p;
  }
  p.valid = true;
  if (!pc.ok()) p.note = pc.problems.front();
  p.step_ms = pc.prediction.time.total * 1e3;
  p.tokens_per_s = pc.prediction.time.tokens_per_s;
  p.mfu = pc.prediction.time.mfu;
  p.comm_share = pc.predicted_comm_share();
  p.memory_gib = pc.prediction.memory.total() / (1024.0 * 1024.0 * 1024.0);
  return p;
}

namespace {

void set_predicted_scaling(ScalingReport& report) {
  if (report.rows.empty()) return;
  const ScalingRow& base = report.rows.front();
  for (auto& row : report.rows) {
    if (!row.predicted.valid || !base.predicted.valid || base.predicted.tokens_per_s <= 0) continue;
    row.predicted_speedup = row.predicted.tokens_per_s / base.predicted.tokens_per_s;
    row.predicted_efficiency = row.predicted_speedup / (double(row.run.ranks) / double(base.run.ranks));
  }
}

// Why a run folder that loaded is not reported.
std::string unfinished_reason(const ScalingRun& r) {
  std::ostringstream os;
  if (r.exit_code > 0) os << "the job step ended with status " << r.exit_code;
  if (r.steps_planned > 0 && r.last_step < r.steps_planned) {
    if (!os.str().empty()) os << "; ";
    os << "stopped at step " << r.last_step << " of " << r.steps_planned;
  }
  if (r.exit_code < 0) os << " (no exit status in job.json: still running, or ended without one)";
  return os.str();
}

// Folders -> rows for the finished runs, FailedPoints for the others. `expect` names a point
// for the failures (the study's point name; "" for the folder's name).
void add_run(const std::string& dir, const std::string& point, int nodes, int ranks, int skip,
             std::vector<ScalingRun>& runs, std::vector<FailedPoint>& failed, const std::string& log_hint) {
  const bool from_study = !point.empty();
  FailedPoint f;
  f.name = point.empty() ? fs::path(dir).filename().string() : point;
  f.nodes = nodes;
  f.ranks = ranks;
  std::string log = log_hint;
  try {
    ScalingRun r = read_scaling_run(dir, skip);
    if (r.finished()) {
      runs.push_back(std::move(r));
      return;
    }
    f.nodes = r.nodes, f.ranks = r.ranks;
    f.status = r.exit_code > 0 ? "failed" : "not finished";
    f.reason = unfinished_reason(r);
    if (!r.log.empty()) log = r.log;
  } catch (const std::exception& e) {
    f.status = fs::is_directory(dir) ? "failed" : "no run";
    f.reason = fs::is_directory(dir) || !from_study
                   ? e.what()
                   : "no run folder " + dir +
                         ": the job never started (still pending, or cancelled or refused by Slurm)";
    // The log named in job.json, when the folder has one.
    std::ifstream in(fs::path(dir) / "job.json");
    if (in) {
      try {
        const auto j = nlohmann::json::parse(in);
        const std::string l = j.value("log", "");
        if (!l.empty()) log = l;
        if (f.nodes == 0) f.nodes = j.value("nodes", 0);
        if (f.ranks == 0) f.ranks = j.value("ranks", 0);
        if (j.contains("exit_code") && j["exit_code"].is_number_integer() && j["exit_code"].get<int>() > 0)
          f.reason += "; the job step ended with status " + std::to_string(j["exit_code"].get<int>());
      } catch (const nlohmann::json::exception&) {
      }
    }
  }
  const std::string err = first_error_line(log);
  if (!err.empty()) f.reason += " -- log: " + err;
  if (!log.empty()) f.reason += " (" + log + ")";
  failed.push_back(std::move(f));
}

ScalingReport finish_report(std::vector<ScalingRun> runs, std::vector<FailedPoint> failed,
                            const ReportOptions& o) {
  if (runs.empty()) {
    std::ostringstream os;
    // One line, as every strata error.
    os << "report scaling: no finished runs";
    for (std::size_t i = 0; i < failed.size(); ++i)
      os << (i == 0 ? ": " : "; ") << failed[i].name << ": " << failed[i].status << ": " << failed[i].reason;
    throw make_error(os.str());
  }
  ScalingReport report = make_scaling_report(std::move(runs));
  report.failed = std::move(failed);
  if (!o.cluster.empty()) {
    const std::string path = config::find_named_config(o.cluster, "clusters", "cluster");
    const config::ClusterConfig cluster = config::load_cluster_config(path);
    report.cluster = path;
    for (auto& row : report.rows) row.predicted = predict_run(row.run, cluster);
    set_predicted_scaling(report);
  }
  return report;
}

}  // namespace

ScalingReport build_scaling_report(const std::vector<std::string>& run_dirs, const ReportOptions& o) {
  std::vector<ScalingRun> runs;
  std::vector<FailedPoint> failed;
  for (const auto& dir : run_dirs) add_run(dir, "", 0, 0, o.skip, runs, failed, "");
  return finish_report(std::move(runs), std::move(failed), o);
}

ScalingReport build_study_report(const std::string& study_dir, ReportOptions o) {
  const fs::path manifest = fs::path(study_dir) / "study.jsonl";
  std::ifstream in(manifest);
  if (!in)
    throw make_error("cannot open '", manifest.string(),
                     "' (slurm/scaling_study.sh writes it; for run folders ",
                     "without a study, pass the folders themselves)");
  // The last record of each point wins; points keep the order of their first record.
  std::vector<std::string> order;
  std::map<std::string, nlohmann::json> points;
  std::string line, cluster;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw make_error(manifest.string(), ":", lineno, ": ", e.what());
    }
    if (j.contains("study")) {
      cluster = j.value("cluster", "");
      continue;
    }
    if (!j.contains("point") || !j["point"].is_string())
      throw make_error(manifest.string(), ":", lineno, ": a point record needs \"point\"");
    const std::string name = j["point"].get<std::string>();
    if (!points.count(name)) order.push_back(name);
    points[name].update(j);
  }
  if (o.cluster.empty()) o.cluster = cluster;
  std::vector<ScalingRun> runs;
  std::vector<FailedPoint> failed;
  for (const auto& name : order) {
    const nlohmann::json& p = points[name];
    const int nodes = p.value("nodes", 0), ranks = p.value("ranks", 0);
    const std::string status = p.value("status", "");
    if (status == "submitted") {
      std::string dir = p.value("run_dir", "");
      if (!dir.empty() && fs::path(dir).is_relative() && !fs::exists(dir))
        dir = (fs::path(study_dir) / dir).string();
      add_run(dir, name, nodes, ranks, o.skip, runs, failed, p.value("log", ""));
    } else {
      FailedPoint f{name, nodes, ranks, status == "refused" ? "refused" : "submit failed",
                    p.value("reason", "")};
      failed.push_back(std::move(f));
    }
  }
  return finish_report(std::move(runs), std::move(failed), o);
}

std::string scaling_csv(const ScalingReport& report) {
  // Columns 1-18 as before predictions existed (scripts read them by position); then the
  // measured communication share and the predictions (empty when there are none).
  Table t({"run",
           "tag",
           "nodes",
           "ranks",
           "layout",
           "tp",
           "pp",
           "dp",
           "seq_len",
           "global_batch",
           "steps",
           "step_ms",
           "tokens_per_s",
           "ideal_tokens_per_s",
           "tflops_per_rank",
           "mfu",
           "speedup",
           "efficiency",
           "comm_share",
           "pred_step_ms",
           "pred_tokens_per_s",
           "pred_mfu",
           "pred_comm_share",
           "pred_speedup",
           "pred_efficiency",
           "pred_memory_gib"});
  const ScalingRun& base = report.rows.front().run;
  for (const auto& row : report.rows) {
    const ScalingRun& r = row.run;
    const ScalingPrediction& p = row.predicted;
    auto pred = [&](const char* f, double v) { return p.valid ? fmt(f, v) : std::string(); };
    t.add_row({r.name,
               r.tag,
               std::to_string(r.nodes),
               std::to_string(r.ranks),
               r.layout(),
               std::to_string(r.tp),
               std::to_string(r.pp),
               std::to_string(r.dp),
               std::to_string(r.seq_len),
               fmt("%.0f", r.global_batch),
               std::to_string(r.steps_measured),
               fmt("%.3f", r.step_ms),
               fmt("%.1f", r.tokens_per_s),
               fmt("%.1f", base.tokens_per_s * r.ranks / base.ranks),
               fmt("%.6g", r.tflops_per_rank),
               r.mfu > 0 ? fmt("%.5f", r.mfu) : std::string(),
               fmt("%.4f", row.speedup),
               fmt("%.4f", row.efficiency),
               r.comm_share >= 0 ? fmt("%.4f", r.comm_share) : std::string(),
               pred("%.3f", p.step_ms),
               pred("%.1f", p.tokens_per_s),
               pred("%.5f", p.mfu),
               pred("%.4f", p.comm_share),
               pred("%.4f", row.predicted_speedup),
               pred("%.4f", row.predicted_efficiency),
               pred("%.4g", p.memory_gib)});
  }
  return t.render(TableFormat::csv);
}

std::string scaling_markdown(const ScalingReport& report) {
  const ScalingRun& base = report.rows.front().run;
  const bool pred = report.has_predictions();
  std::ostringstream os;
  os << "## Scaling study: " << report.mode << " scaling\n\n"
     << "Baseline: " << base.name << " (" << base.ranks << " rank" << (base.ranks == 1 ? "" : "s")
     << "). Efficiency = (tokens/s / baseline tokens/s) / (ranks / baseline ranks). Comm = time waiting on "
     << "pipeline neighbours and data-parallel reduction / step time.";
  if (pred) os << " Predicted (pred.) by the planner for each run's layout with " << report.cluster << ".";
  os << "\n\n";
  std::vector<std::string> head = {"run", "nodes", "ranks", "layout", "global batch", "step (ms)"};
  if (pred) head.push_back("pred. step (ms)");
  head.push_back("tokens/s");
  if (pred) head.push_back("pred. tokens/s");
  head.push_back("TFLOP/s per rank");
  head.push_back("MFU");
  if (pred) head.push_back("pred. MFU");
  head.push_back("comm");
  if (pred) head.push_back("pred. comm");
  head.push_back("speedup");
  if (pred) head.push_back("pred. speedup");
  head.push_back("efficiency");
  if (pred) head.push_back("pred. efficiency");
  Table t(head);
  for (const auto& row : report.rows) {
    const ScalingRun& r = row.run;
    const ScalingPrediction& p = row.predicted;
    auto pv = [&](const std::string& v) { return p.valid ? v : std::string("n/a"); };
    std::vector<std::string> cells = {r.name,     std::to_string(r.nodes),     std::to_string(r.ranks),
                                      r.layout(), fmt("%.0f", r.global_batch), fmt("%.1f", r.step_ms)};
    if (pred) cells.push_back(pv(fmt("%.1f", p.step_ms)));
    cells.push_back(fmt("%.0f", r.tokens_per_s));
    if (pred) cells.push_back(pv(fmt("%.0f", p.tokens_per_s)));
    cells.push_back(fmt("%.3g", r.tflops_per_rank));
    cells.push_back(r.mfu > 0 ? pct(r.mfu) : std::string("n/a"));
    if (pred) cells.push_back(pv(pct(p.mfu)));
    cells.push_back(r.comm_share >= 0 ? pct(r.comm_share) : std::string("n/a"));
    if (pred) cells.push_back(pv(pct(p.comm_share)));
    cells.push_back(fmt("%.2fx", row.speedup));
    if (pred) cells.push_back(pv(fmt("%.2fx", row.predicted_speedup)));
    cells.push_back(pct(row.efficiency));
    if (pred) cells.push_back(pv(pct(row.predicted_efficiency)));
    t.add_row(std::move(cells));
  }
  os << t.render(TableFormat::markdown);
  std::vector<std::string> notes;
  for (const auto& row : report.rows)
    if (!row.predicted.note.empty() && report.has_predictions())
      notes.push_back(row.run.name + ": " + row.predicted.note);
  if (!notes.empty()) {
    os << "\nPrediction notes:\n";
    for (const auto& n : notes) os << "- " << n << "\n";
  }
  if (!report.failed.empty()) {
    os << "\n### Points without a result (" << report.failed.size() << ")\n\n";
    Table f({"point", "nodes", "ranks", "status", "reason"});
    for (const auto& p : report.failed)
      f.add_row({p.name, p.nodes > 0 ? std::to_string(p.nodes) : "?",
                 p.ranks > 0 ? std::to_string(p.ranks) : "?", p.status, p.reason});
    os << f.render(TableFormat::markdown);
  }
  return os.str();
}

std::string scaling_gnuplot(const ScalingReport& report, const std::string& csv_path,
                            const std::string& png_path) {
  // Columns of scaling_csv(): 3 nodes, 4 ranks, 13 tokens_per_s, 14 ideal, 18 efficiency,
  // 21 pred_tokens_per_s, 25 pred_efficiency.
  std::set<int> nodes;
  for (const auto& row : report.rows) nodes.insert(row.run.nodes);
  const bool by_nodes = nodes.size() > 1;
  const bool pred = report.has_predictions();
  const int x = by_nodes ? 3 : 4;
  const char* xlabel = by_nodes ? "nodes" : "ranks";
  // gnuplot single-quoted strings: a quote is written twice.
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  const std::string csv = quote(csv_path);
  std::ostringstream os;
  os << "# Drawn by `strata report scaling`; rerun with: gnuplot <this file>\n"
     << "set datafile separator ','\n"
     << "set terminal pngcairo size 1200,480 font ',11'\n"
     << "set output " << quote(png_path) << "\n"
     << "set multiplot layout 1,2 title " << quote("strata: " + report.mode + " scaling") << "\n"
     << "set grid\n"
     << "set key top left\n"
     << "set xlabel '" << xlabel << "'\n"
     << "set logscale x 2\n"
     << "set offsets graph 0.05, graph 0.05, 0, 0\n"
     << "set ylabel 'tokens/s'\n"
     << "set logscale y 2\n"  // log-log: the ideal line is straight
     << "set format y '%.1s%c'\n"
     << "plot " << csv << " skip 1 using " << x << ":13 with linespoints pt 7 lw 2 title 'measured', \\\n";
  if (pred)
    os << "     " << csv << " skip 1 using " << x
       << ":21 with linespoints pt 6 lw 2 dt 4 title 'predicted', \\\n";
  os << "     " << csv << " skip 1 using " << x << ":14 with lines dt 2 lw 2 title 'ideal (linear)'\n"
     << "set ylabel 'scaling efficiency (%)'\n"
     << "unset logscale y\n"
     << "set format y '%g'\n"
     << "set yrange [0:110<*]\n"
     << "set key bottom left\n"
     << "plot " << csv << " skip 1 using " << x
     << ":(100*$18) with linespoints pt 7 lw 2 title 'measured', \\\n";
  if (pred)
    os << "     " << csv << " skip 1 using " << x
       << ":(100*$25) with linespoints pt 6 lw 2 dt 4 title 'predicted', \\\n";
  os << "     100 with lines dt 2 lw 2 title 'ideal'\n"
     << "unset multiplot\n";
  return os.str();
}

}  // namespace strata::plan
