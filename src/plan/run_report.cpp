#include "strata/plan/run_report.hpp"

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
#include "strata/plan/scaling.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {

namespace fs = std::filesystem;

namespace {

// gnuplot single-quoted strings: a quote is written twice.
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

// One colour per run, the same in every panel (8, then they repeat).
const char* colour(std::size_t run) {
  static const char* const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                        "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  return palette[run % 8];
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string g(double v) { return fmt("%.9g", v); }

}  // namespace

RunMetrics read_run(const std::string& dir, int skip_steps) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw make_error("run folder '", dir, "' does not exist");
  RunMetrics run;
  run.dir = dir;
  run.label = (d.filename().empty() ? d.parent_path() : d).filename().string();
  const fs::path file = d / "metrics.jsonl";
  std::ifstream in(file);
  if (!in)
    throw make_error("cannot open '", file.string(),
                     "' (a run folder holds metrics.jsonl, written by strata train)");
  std::map<long, RunStep> steps;
  std::map<long, RunValid> valid;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      const long step = j.at("step").get<long>();
      if (j.contains("stragglers")) {
        const auto& s = j.at("stragglers");
        if (s.contains("slowest") && !s.at("slowest").empty()) {
          const auto& w = s.at("slowest").at(0);
          run.stragglers.push_back({step, w.at("rank").get<int>(), w.value("tp", 0), w.value("dp", 0),
                                    w.value("pp", 0), w.value("slowdown", 1.0), w.value("compute_ms", 0.0)});
        }
      } else if (j.contains("rollback")) {
        const auto& r = j.at("rollback");
        const auto& skipped = r.at("skipped_samples");
        run.rollbacks.push_back(
            {step, r.at("from_step").get<long>(), skipped.at(0).get<double>(), skipped.at(1).get<double>()});
      } else if (j.contains("valid_loss")) {
        valid[step] = {step, j.at("valid_loss").get<double>(), j.value("valid_ppl", 0.0)};
      } else if (j.contains("step_ms")) {
        RunStep r;
        r.step = step;
        // A bad step's non-finite loss or norm is null.
        auto number = [&](const char* key) {
          const auto& v = j.at(key);
          return v.is_null() ? std::nan("") : v.get<double>();
        };
        r.loss = number("loss");
        r.lr = j.value("lr", 0.0);
        r.grad_norm = j.contains("grad_norm") ? number("grad_norm") : 0.0;
        r.skipped = j.value("skipped", 0) != 0;
        r.ckpt_ms = j.value("ckpt_ms", 0.0);
        r.save_wait_ms = j.value("save_wait_ms", 0.0);
        r.tokens_per_s = j.value("tokens_per_s", 0.0);
        r.mfu = j.value("mfu", 0.0);
        r.mem_mib = j.value("mem_bytes", 0.0) / 1048576.0;
        r.step_ms = j.at("step_ms").get<double>();
        r.compute_ms = j.value("compute_ms", 0.0);
        r.data_wait_ms = j.value("data_wait_ms", 0.0);
        r.pipeline_wait_ms = j.value("pipeline_wait_ms", 0.0);
        r.dp_wait_ms = j.value("dp_wait_ms", 0.0);
        r.tokens = j.value("tokens", 0.0);
        steps[step] = r;
      } else {
        throw make_error("neither a step, a validation, a straggler nor a rollback record");
      }
    } catch (const std::exception& e) {
      throw make_error(file.string(), ":", lineno, ": ", e.what());
    }
  }
  if (steps.empty()) throw make_error(file.string(), ": no steps recorded");
  for (auto& [s, r] : steps) run.steps.push_back(r);
  for (auto& [s, v] : valid) run.valid.push_back(v);

  const fs::path cfg_file = d / "config.yaml";
  if (fs::exists(cfg_file)) {
    try {
      const YAML::Node cfg = YAML::LoadFile(cfg_file.string());
      if (cfg["model"] && cfg["model"]["name"]) run.model = cfg["model"]["name"].as<std::string>();
      const YAML::Node p = cfg["parallel"];
      if (p && p["tp"] && p["pp"] && p["dp"])
        run.layout = "tp" + p["tp"].as<std::string>() + "-pp" + p["pp"].as<std::string>() + "-dp" +
                     p["dp"].as<std::string>();
    } catch (const YAML::Exception& e) {
      throw make_error(cfg_file.string(), ": ", e.what());
    }
    // Throughput exactly as the scaling report defines it (needs config.yaml's layout).
    try {
      const ScalingRun s = read_scaling_run(dir, skip_steps);
      run.tokens_per_s = s.tokens_per_s;
      run.mfu = s.mfu;
      run.step_ms = s.step_ms;
      run.steps_measured = s.steps_measured;
    } catch (const Error&) {
      // too few steps, or a config without the layout: the table shows "-"
    }
  }
  return run;
}

void label_runs(std::vector<RunMetrics>& runs) {
  // Folder names; where two runs share one, as many parent folders as make them distinct.
  for (int depth = 1; depth < 8; ++depth) {
    std::map<std::string, int> count;
    std::vector<std::string> labels;
    for (const RunMetrics& r : runs) {
      fs::path p = fs::path(r.dir).lexically_normal();
      if (p.filename().empty()) p = p.parent_path();
      std::vector<std::string> parts;
      for (const auto& part : p) parts.push_back(part.string());
      std::string label;
      for (int k = std::max(0, int(parts.size()) - depth); k < int(parts.size()); ++k)
        label += (label.empty() ? "" : "/") + parts[std::size_t(k)];
      labels.push_back(label);
      ++count[label];
    }
    bool unique = true;
    for (const auto& [l, c] : count) unique = unique && c == 1;
    if (unique || depth == 7) {
      for (std::size_t i = 0; i < runs.size(); ++i)
        runs[i].label = count[labels[i]] == 1 ? labels[i] : labels[i] + " #" + std::to_string(i + 1);
      return;
    }
  }
}

std::string run_steps_csv(const RunMetrics& run) {
  std::ostringstream os;
  os << "step,loss,lr,grad_norm,tokens_per_s,mfu,mem_mib,step_ms,compute_ms,data_wait_ms,pipeline_wait_ms,dp_"
        "wait_ms,"
        "ckpt_ms,save_wait_ms,skipped\n";
  for (const RunStep& r : run.steps)
    os << r.step << ',' << g(r.loss) << ',' << g(r.lr) << ',' << g(r.grad_norm) << ',' << g(r.tokens_per_s)
       << ',' << g(r.mfu) << ',' << g(r.mem_mib) << ',' << g(r.step_ms) << ',' << g(r.compute_ms) << ','
       << g(r.data_wait_ms) << ',' << g(r.pipeline_wait_ms) << ',' << g(r.dp_wait_ms) << ',' << g(r.ckpt_ms)
       << ',' << g(r.save_wait_ms) << ',' << (r.skipped ? 1 : 0) << '\n';
  return os.str();
}

std::string run_valid_csv(const RunMetrics& run) {
  std::ostringstream os;
  os << "step,valid_loss,valid_ppl\n";
  for (const RunValid& v : run.valid) os << v.step << ',' << g(v.loss) << ',' << g(v.ppl) << '\n';
  return os.str();
}

std::string run_markdown(const std::vector<RunMetrics>& runs, const std::string& png_name) {
  std::ostringstream os;
  os << "## Training runs\n\n";
  if (!png_name.empty())
    os << "![loss, learning rate, gradient norm, throughput, MFU, memory, times](" << png_name << ")\n\n";
  Table t({"run", "model", "layout", "steps", "tokens", "final loss", "best valid loss",
           "last valid loss (ppl)", "tokens/s", "MFU", "step (ms)", "peak mem (MiB)",
           "waits data / pipeline / DP (ms)", "grad norm median / max", "checkpoint (ms) / of it waiting",
           "skipped / rollbacks"});
  std::ostringstream notes;
  for (const RunMetrics& r : runs) {
    const std::size_t n = r.steps.size();
    double tokens = 0, loss_tail = 0, mem = 0, wd = 0, wp = 0, wdp = 0, gmax = 0, ck = 0, ckw = 0;
    std::vector<double> gnorm;
    std::vector<long> skipped;
    // The final loss: the last 10 applied steps (a skipped step's loss is not the model's).
    std::vector<double> applied;
    for (const RunStep& s : r.steps)
      if (!s.skipped && std::isfinite(s.loss)) applied.push_back(s.loss);
    const std::size_t tail = std::min<std::size_t>(applied.size(), 10);
    for (std::size_t i = applied.size() - tail; i < applied.size(); ++i)
      loss_tail += applied[i] / double(tail);
    for (std::size_t i = 0; i < n; ++i) {
      const RunStep& s = r.steps[i];
      tokens += s.tokens;
      mem = std::max(mem, s.mem_mib);
      wd += s.data_wait_ms / double(n);
      wp += s.pipeline_wait_ms / double(n);
      wdp += s.dp_wait_ms / double(n);
      ck += s.ckpt_ms / double(n);
      ckw += s.save_wait_ms / double(n);
      if (s.skipped) skipped.push_back(s.step);
      if (!std::isfinite(s.grad_norm)) continue;
      gnorm.push_back(s.grad_norm);
      gmax = std::max(gmax, s.grad_norm);
    }
    const double gmed = median(gnorm);
    std::string best = "-", last = "-";
    if (!r.valid.empty()) {
      const auto b = std::min_element(r.valid.begin(), r.valid.end(),
                                      [](const RunValid& a, const RunValid& c) { return a.loss < c.loss; });
      best = fmt("%.4f", b->loss) + " (step " + std::to_string(b->step) + ")";
      last = fmt("%.4f", r.valid.back().loss) + " (" + fmt("%.2f", r.valid.back().ppl) + ")";
    }
    t.add_row({r.label, r.model.empty() ? "-" : r.model, r.layout.empty() ? "-" : r.layout,
               std::to_string(r.steps.front().step) + "-" + std::to_string(r.steps.back().step),
               fmt("%.3g", tokens), fmt("%.4f", loss_tail), best, last,
               r.steps_measured > 0 ? fmt("%.0f", r.tokens_per_s) : "-",
               r.steps_measured > 0 ? fmt("%.1f%%", 100 * r.mfu) : "-",
               r.steps_measured > 0 ? fmt("%.1f", r.step_ms) : "-", fmt("%.0f", mem),
               fmt("%.1f", wd) + " / " + fmt("%.1f", wp) + " / " + fmt("%.1f", wdp),
               fmt("%.3g", gmed) + " / " + fmt("%.3g", gmax), fmt("%.1f", ck) + " / " + fmt("%.1f", ckw),
               std::to_string(skipped.size()) + " / " + std::to_string(r.rollbacks.size())});
    // Notes: the bad-step guard's skips and rollbacks.
    if (!skipped.empty()) {
      notes << "- " << r.label << ": " << skipped.size() << " bad step" << (skipped.size() == 1 ? "" : "s")
            << " skipped (no update): steps";
      for (std::size_t i = 0; i < std::min<std::size_t>(skipped.size(), 10); ++i) notes << ' ' << skipped[i];
      notes << (skipped.size() > 10 ? " ..." : "") << "\n";
    }
    for (const RunRollback& b : r.rollbacks)
      notes << "- " << r.label << ": rolled back after step " << b.from_step << " to the checkpoint of step "
            << b.to_step << ", skipping samples [" << fmt("%.0f", b.skip_begin) << ", "
            << fmt("%.0f", b.skip_end) << ")\n";

    // Notes: gradient-norm spikes (above 5x the run's median) and the ranks named slowest.
    std::vector<long> spikes;
    for (const RunStep& s : r.steps)
      if (gmed > 0 && s.grad_norm > 5 * gmed) spikes.push_back(s.step);
    if (!spikes.empty()) {
      notes << "- " << r.label << ": " << spikes.size() << " step" << (spikes.size() == 1 ? "" : "s")
            << " with a gradient norm above 5x the median (" << fmt("%.3g", gmed) << "): steps";
      for (std::size_t i = 0; i < std::min<std::size_t>(spikes.size(), 10); ++i) notes << ' ' << spikes[i];
      notes << (spikes.size() > 10 ? " ..." : "") << "\n";
    }
    if (!r.stragglers.empty()) {
      std::map<int, int> times;
      const RunStraggler* worst = &r.stragglers.front();
      for (const RunStraggler& s : r.stragglers) {
        ++times[s.rank];
        if (s.slowdown > worst->slowdown) worst = &s;
      }
      const auto most = std::max_element(times.begin(), times.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; });
      const RunStraggler* who = nullptr;
      for (const RunStraggler& s : r.stragglers)
        if (s.rank == most->first) who = &s;
      notes << "- " << r.label << ": slowest rank " << most->first << " (tp " << who->tp << ", dp " << who->dp
            << ", pp " << who->pp << ") in " << most->second << " of " << r.stragglers.size()
            << " straggler reports; the highest slowdown was rank " << worst->rank << " at step "
            << worst->step << ", " << fmt("%.2f", worst->slowdown)
            << "x its pipeline stage's median compute time\n";
    }
  }
  os << t.render(TableFormat::markdown) << "\n";
  os << "final loss: mean training loss of the last 10 steps; tokens/s, MFU and step time: over the steps "
        "after the "
        "warm-up (as `strata report scaling`); waits: mean per step; peak memory: rank 0's resident set; "
        "checkpoint: "
        "the training thread's time on checkpoints per step (the snapshot of a background save, or the whole "
        "of a "
        "synchronous one) and the part of it spent waiting for the previous save; skipped: the bad-step "
        "guard's "
        "skipped steps (in the final trajectory) and rollbacks.\n";
  if (!notes.str().empty()) os << "\n### Notes\n\n" << notes.str();
  return os.str();
}

std::string run_gnuplot(const std::vector<RunMetrics>& runs, const std::vector<std::string>& steps_csv,
                        const std::vector<std::string>& valid_csv, const std::string& png_path) {
  std::ostringstream os;
  const bool many = runs.size() > 1;
  os << "# Drawn by `strata report run`; rerun with: gnuplot <this file>\n"
     << "set datafile separator ','\n"
     << "set terminal pngcairo size 1400,1500 font ',10'\n"
     << "set output " << quote(png_path) << "\n"
     << "set multiplot layout 4,2 title "
     << quote(many ? "strata: " + std::to_string(runs.size()) + " runs" : "strata: " + runs.front().label)
     << "\n"
     << "set grid\n"
     << "set key top right font ',9'\n"
     << "set offsets 0, 0, graph 0.15, 0\n"  // headroom above the curves for the key
     << "set xlabel 'step'\n";
  // One panel: `series(i)` gives run i's plot clauses ("" for none).
  auto panel = [&](const std::string& title, const std::string& setup, auto series) {
    os << "set title " << quote(title) << "\n" << setup;
    std::string clauses;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const std::string c = series(i);
      if (!c.empty()) clauses += (clauses.empty() ? "" : ", \\\n     ") + c;
    }
    os << "plot " << clauses << "\n";
    os << "unset logscale y\nset format y '%g'\nset autoscale y\nset offsets 0, 0, graph 0.15, 0\n";
  };
  const std::string log_y = "set logscale y\nset offsets 0, 0, 0, 0\n";  // headroom would add a decade
  const std::string from_zero = "set yrange [0:*]\n";  // amounts: a flat line is not magnified
  auto line = [&](std::size_t i, const std::string& using_, const std::string& what,
                  const char* style = "lw 1.5") {
    return quote(steps_csv[i]) + " skip 1 using " + using_ + " with lines " + style + " lc rgb '" +
           colour(i) + "' title " +
           quote(many           ? runs[i].label + (what.empty() ? "" : " " + what)
                 : what.empty() ? runs[i].label
                                : what);
  };
  panel(
      "loss (lines: training; points: validation; crosses: skipped bad steps, drawn at most at the curve's "
      "top)",
      "", [&](std::size_t i) {
        // The line leaves skipped steps out (a spike would flatten the curve); their crosses sit at
        // their loss, capped at the highest applied loss (a NaN at the cap).
        double top = 0;
        for (const RunStep& s : runs[i].steps)
          if (!s.skipped && std::isfinite(s.loss)) top = std::max(top, s.loss);
        std::string c = line(i, "1:($15 > 0 ? 1/0 : $2)", "train");
        c += ", \\\n     " + quote(steps_csv[i]) + " skip 1 using 1:($15 > 0 ? ($2 < " + g(top) +
             " ? $2 : " + g(top) + ") : 1/0) with points pt 2 ps 1.5 lw 2 lc rgb '" + colour(i) + "' notitle";
        if (!runs[i].valid.empty())
          c += ", \\\n     " + quote(valid_csv[i]) +
               " skip 1 using 1:2 with linespoints pt 7 ps 1.2 lw 2 dt 2 lc rgb '" + colour(i) + "' title " +
               quote(many ? runs[i].label + " valid" : "valid");
        return c;
      });
  panel("learning rate", "set format y '%.1e'\n", [&](std::size_t i) { return line(i, "1:3", ""); });
  panel("gradient norm (before clipping)", log_y, [&](std::size_t i) { return line(i, "1:4", ""); });
  panel("throughput (tokens/s)", from_zero + "set format y '%.1s%c'\n",
        [&](std::size_t i) { return line(i, "1:5", ""); });
  panel("MFU (%)", from_zero, [&](std::size_t i) { return line(i, "1:(100*$6)", ""); });
  panel("peak memory, rank 0 (MiB)", from_zero, [&](std::size_t i) { return line(i, "1:7", ""); });
  panel("time per step (ms): step (solid), compute (dashed)", log_y, [&](std::size_t i) {
    return line(i, "1:8", "step") + ", \\\n     " + line(i, "1:9", "compute", "lw 1.5 dt 2");
  });
  panel("waits per step (ms): data (solid), pipeline (dashed), DP (dotted), checkpoint (dash-dot)", from_zero,
        [&](std::size_t i) {
          return line(i, "1:10", "data") + ", \\\n     " + line(i, "1:11", "pipeline", "lw 1.5 dt 2") +
                 ", \\\n     " + line(i, "1:12", "DP", "lw 2 dt 3") + ", \\\n     " +
                 line(i, "1:13", "checkpoint", "lw 1.5 dt 4");
        });
  os << "unset multiplot\n";
  return os.str();
}

}  // namespace strata::plan
