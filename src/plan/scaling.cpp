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

#include "strata/core/error.hpp"
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

}  // namespace

// metrics.jsonl: the last record of each step number (validation and straggler records, which
// carry valid_loss or stragglers instead of the step's timings, are skipped).
std::map<long, StepRecord> read_step_metrics(const std::string& path) {
  const fs::path file(path);
  std::ifstream in(file);
  if (!in) throw make_error("cannot open '", file.string(), "' (a run folder holds metrics.jsonl, config.yaml)");
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
      r.mfu = j.at("mfu").get<double>();
      r.cpu_ms = j.value("cpu_ms", -1.0);
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
  if (!fs::exists(cfg_file)) throw make_error("'", cfg_file.string(), "' is missing (written by strata train)");
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

  // job.json (slurm/launch.sh): the allocation.
  const fs::path job_file = d / "job.json";
  if (fs::exists(job_file)) {
    std::ifstream in(job_file);
    try {
      const auto j = nlohmann::json::parse(in);
      run.nodes = j.at("nodes").get<int>();
      run.ranks = j.at("ranks").get<int>();
      run.tag = j.value("tag", "");
      run.scaling = j.value("scaling", "");
    } catch (const nlohmann::json::exception& e) {
      throw make_error(job_file.string(), ": ", e.what());
    }
  } else if (dp > 0) {
    run.ranks = run.tp * run.pp * dp;
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
  double tokens = 0, seconds = 0, flop_time = 0, mfu_time = 0;
  long i = 0;
  for (const auto& [step, r] : steps) {
    if (i++ < skip) continue;
    const double s = r.step_ms * 1e-3;
    tokens += r.tokens_per_s * s;
    seconds += s;
    flop_time += r.tflops * s;
    mfu_time += r.mfu * s;
  }
  if (seconds <= 0) throw make_error(dir, ": the measured steps take no time");
  run.steps_measured = n - skip;
  run.step_ms = 1e3 * seconds / double(run.steps_measured);
  run.tokens_per_s = tokens / seconds;
  run.tflops_per_rank = flop_time / seconds;
  run.mfu = mfu_time / seconds;
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

std::string scaling_csv(const ScalingReport& report) {
  Table t({"run", "tag", "nodes", "ranks", "layout", "tp", "pp", "dp", "seq_len", "global_batch", "steps",
           "step_ms", "tokens_per_s", "ideal_tokens_per_s", "tflops_per_rank", "mfu", "speedup", "efficiency"});
  const ScalingRun& base = report.rows.front().run;
  for (const auto& row : report.rows) {
    const ScalingRun& r = row.run;
    t.add_row({r.name, r.tag, std::to_string(r.nodes), std::to_string(r.ranks), r.layout(), std::to_string(r.tp),
               std::to_string(r.pp), std::to_string(r.dp), std::to_string(r.seq_len), fmt("%.0f", r.global_batch),
               std::to_string(r.steps_measured), fmt("%.3f", r.step_ms), fmt("%.1f", r.tokens_per_s),
               fmt("%.1f", base.tokens_per_s * r.ranks / base.ranks), fmt("%.6g", r.tflops_per_rank),
               fmt("%.5f", r.mfu), fmt("%.4f", row.speedup), fmt("%.4f", row.efficiency)});
  }
  return t.render(TableFormat::csv);
}

std::string scaling_markdown(const ScalingReport& report) {
  const ScalingRun& base = report.rows.front().run;
  std::ostringstream os;
  os << "## Scaling study: " << report.mode << " scaling\n\n"
     << "Baseline: " << base.name << " (" << base.ranks << " rank" << (base.ranks == 1 ? "" : "s")
     << "). Efficiency = (tokens/s / baseline tokens/s) / (ranks / baseline ranks).\n\n";
  Table t({"run", "nodes", "ranks", "layout", "global batch", "step (ms)", "tokens/s", "TFLOP/s per rank", "MFU",
           "speedup", "efficiency"});
  for (const auto& row : report.rows) {
    const ScalingRun& r = row.run;
    t.add_row({r.name, std::to_string(r.nodes), std::to_string(r.ranks), r.layout(), fmt("%.0f", r.global_batch),
               fmt("%.1f", r.step_ms), fmt("%.0f", r.tokens_per_s), fmt("%.3g", r.tflops_per_rank), pct(r.mfu),
               fmt("%.2fx", row.speedup), pct(row.efficiency)});
  }
  os << t.render(TableFormat::markdown);
  return os.str();
}

std::string scaling_gnuplot(const ScalingReport& report, const std::string& csv_path, const std::string& png_path) {
  // Columns of scaling_csv(): 3 nodes, 4 ranks, 13 tokens_per_s, 14 ideal, 18 efficiency.
  std::set<int> nodes;
  for (const auto& row : report.rows) nodes.insert(row.run.nodes);
  const bool by_nodes = nodes.size() > 1;
  const int x = by_nodes ? 3 : 4;
  const char* xlabel = by_nodes ? "nodes" : "ranks";
  // gnuplot single-quoted strings: a quote is written twice.
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
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
     << "plot " << quote(csv_path) << " skip 1 using " << x << ":13 with linespoints pt 7 lw 2 title 'measured', \\\n"
     << "     " << quote(csv_path) << " skip 1 using " << x << ":14 with lines dt 2 lw 2 title 'ideal (linear)'\n"
     << "set ylabel 'scaling efficiency (%)'\n"
     << "unset logscale y\n"
     << "set format y '%g'\n"
     << "set yrange [0:110<*]\n"
     << "set key bottom left\n"
     << "plot " << quote(csv_path) << " skip 1 using " << x
     << ":(100*$18) with linespoints pt 7 lw 2 title 'efficiency', \\\n"
     << "     100 with lines dt 2 lw 2 title 'ideal'\n"
     << "unset multiplot\n";
  return os.str();
}

}  // namespace strata::plan
