// Calibration of a cluster file's efficiencies; see calibrate.hpp.
#include "strata/plan/calibrate.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/memory.hpp"
#include "strata/plan/scaling.hpp"
#include "strata/plan/step_time.hpp"
#include "strata/plan/table.hpp"

namespace strata::plan {

namespace fs = std::filesystem;

namespace {

// A calibratable constant: its key, member, and the bounds of its value.
struct Constant {
  const char* key;
  double config::ClusterConfig::*member;
  double low, high;
  double start;  // where the fit starts when the cluster's value is 0 ("off")
};
constexpr Constant kConstants[] = {
    {"sustained_fraction", &config::ClusterConfig::sustained_fraction, 1e-4, 1.0, 0.5},
    {"small_gemm_width", &config::ClusterConfig::small_gemm_width, 1e-3, 1e6, 32.0},
    {"attention_fraction", &config::ClusterConfig::attention_fraction, 1e-4, 1.0, 0.0},
    {"elementwise_fraction", &config::ClusterConfig::elementwise_fraction, 1e-4, 1.0, 1.0},
    {"overlap_efficiency", &config::ClusterConfig::overlap_efficiency, 1e-4, 1.0, 0.5},
    {"intra_node_gb_per_s", &config::ClusterConfig::intra_node_gb_per_s, 1e-3, 1e5, 10.0},
    {"intra_node_alpha_us", &config::ClusterConfig::intra_node_alpha_us, 1e-3, 1e6, 10.0},
};

const Constant& constant(const std::string& key) {
  for (const Constant& c : kConstants)
    if (key == c.key) return c;
  throw make_error(
      "--fit: '", key, "' is not a calibratable constant (",
      [] {
        std::string s;
        for (const Constant& c : kConstants) s += (s.empty() ? "" : ", ") + std::string(c.key);
        return s;
      }(),
      ")");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Solves the small dense system A x = b (Gaussian elimination with partial pivoting).
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const std::size_t n = b.size();
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t p = k;
    for (std::size_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i][k]) > std::fabs(a[p][k])) p = i;
    std::swap(a[k], a[p]);
    std::swap(b[k], b[p]);
    if (std::fabs(a[k][k]) < 1e-300) a[k][k] = 1e-300;
    for (std::size_t i = k + 1; i < n; ++i) {
      const double f = a[i][k] / a[k][k];
      for (std::size_t j = k; j < n; ++j) a[i][j] -= f * a[k][j];
      b[i] -= f * b[k];
    }
  }
  std::vector<double> x(n);
  for (std::size_t k = n; k-- > 0;) {
    double s = b[k];
    for (std::size_t j = k + 1; j < n; ++j) s -= a[k][j] * x[j];
    x[k] = s / a[k][k];
  }
  return x;
}

// One run, prepared once: the cluster as the run's ranks share it and the run's memory (which no
// calibrated constant changes).
struct Prepared {
  const CalibrationRun* run;
  config::ClusterConfig shared;
  MemoryBreakdown memory;
};

Prepared prepare(const CalibrationRun& run, const config::ClusterConfig& cluster) {
  Prepared p{&run, share_node(cluster, run.ranks_per_node), {}};
  Layout l = run.layout;
  l.precision = p.shared.precision;
  p.memory = predict_memory(run.workload, l, p.shared);
  return p;
}

double predict(const Prepared& p, const std::vector<const Constant*>& keys,
               const std::vector<double>& values) {
  config::ClusterConfig c = p.shared;
  for (std::size_t k = 0; k < keys.size(); ++k) c.*(keys[k]->member) = values[k];
  Layout l = p.run->layout;
  l.precision = c.precision;
  return predict_step_time(p.run->workload, l, c, p.memory).total;
}

// Levenberg-Marquardt on u = log(value): minimise sum_i log(pred_i / measured_i)^2.
std::vector<double> fit(const std::vector<const Prepared*>& runs, const std::vector<const Constant*>& keys,
                        std::vector<double> start) {
  const std::size_t n = keys.size();
  std::vector<double> u(n), lo(n), hi(n);
  for (std::size_t k = 0; k < n; ++k) {
    lo[k] = std::log(keys[k]->low), hi[k] = std::log(keys[k]->high);
    u[k] = std::clamp(std::log(std::max(start[k], keys[k]->low)), lo[k], hi[k]);
  }
  const auto residuals = [&](const std::vector<double>& at) {
    std::vector<double> values(n), r;
    for (std::size_t k = 0; k < n; ++k) values[k] = std::exp(at[k]);
    for (const Prepared* p : runs) r.push_back(std::log(predict(*p, keys, values) / p->run->measured_s));
    return r;
  };
  const auto cost = [](const std::vector<double>& r) {
    double s = 0;
    for (double x : r) s += x * x;
    return s;
  };
  std::vector<double> r = residuals(u);
  double c = cost(r), lambda = 1e-3;
  for (int iter = 0; iter < 200; ++iter) {
    // Numerical Jacobian (the model is cheap: no allocation, memory precomputed).
    std::vector<std::vector<double>> J(r.size(), std::vector<double>(n));
    for (std::size_t k = 0; k < n; ++k) {
      std::vector<double> at = u;
      const double h = 1e-5 * std::max(1.0, std::fabs(u[k]));
      at[k] += h;
      const std::vector<double> rk = residuals(at);
      for (std::size_t i = 0; i < r.size(); ++i) J[i][k] = (rk[i] - r[i]) / h;
    }
    std::vector<std::vector<double>> A(n, std::vector<double>(n, 0.0));
    std::vector<double> g(n, 0.0);
    for (std::size_t i = 0; i < r.size(); ++i)
      for (std::size_t a = 0; a < n; ++a) {
        g[a] -= J[i][a] * r[i];
        for (std::size_t b = 0; b < n; ++b) A[a][b] += J[i][a] * J[i][b];
      }
    bool improved = false;
    for (int tries = 0; tries < 20 && !improved; ++tries) {
      std::vector<std::vector<double>> D = A;
      for (std::size_t a = 0; a < n; ++a) D[a][a] += lambda * (A[a][a] + 1e-9);
      const std::vector<double> step = solve(D, g);
      std::vector<double> next(n);
      for (std::size_t k = 0; k < n; ++k) next[k] = std::clamp(u[k] + step[k], lo[k], hi[k]);
      const std::vector<double> rn = residuals(next);
      const double cn = cost(rn);
      if (cn < c) {
        const double gain = c - cn;
        u = next, r = rn, c = cn, lambda = std::max(lambda / 10, 1e-12), improved = true;
        if (gain < 1e-14 * (1 + c)) iter = 1 << 30;  // converged
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  std::vector<double> values(n);
  for (std::size_t k = 0; k < n; ++k) values[k] = std::exp(u[k]);
  return values;
}

}  // namespace

const std::vector<std::string>& calibratable_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const Constant& c : kConstants) k.emplace_back(c.key);
    return k;
  }();
  return keys;
}

double predict_run_s(const CalibrationRun& run, const config::ClusterConfig& cluster) {
  const Prepared p = prepare(run, cluster);
  return predict(p, {}, {});
}

Calibration calibrate(const config::ClusterConfig& cluster, const std::vector<CalibrationRun>& runs,
                      const std::vector<std::string>& keys, bool leave_one_out) {
  if (keys.empty()) throw make_error("calibration: no constants to fit");
  if (runs.size() < keys.size())
    throw make_error("calibration: ", runs.size(), " run(s) cannot determine ", keys.size(),
                     " constants; give at least as many runs as constants (better: several more)");
  std::vector<const Constant*> consts;
  std::vector<double> start;
  for (const std::string& k : keys) {
    const Constant& c = constant(k);
    if (std::ranges::count(consts, &c)) throw make_error("--fit: '", k, "' given twice");
    consts.push_back(&c);
    double v = cluster.*c.member;
    if (c.member == &config::ClusterConfig::attention_fraction) v = cluster.attention_efficiency();
    start.push_back(v > 0 ? v : c.start);
  }
  for (const CalibrationRun& r : runs)
    if (!(r.measured_s > 0)) throw make_error("calibration: run '", r.name, "' has no measured step time");
  std::vector<Prepared> prepared;
  for (const CalibrationRun& r : runs) prepared.push_back(prepare(r, cluster));
  std::vector<const Prepared*> all;
  for (const Prepared& p : prepared) all.push_back(&p);

  Calibration out;
  out.keys = keys;
  out.before = start;
  out.after = fit(all, consts, start);
  out.cluster = cluster;
  for (std::size_t k = 0; k < consts.size(); ++k) out.cluster.*(consts[k]->member) = out.after[k];
  double sq = 0;
  for (std::size_t i = 0; i < prepared.size(); ++i) {
    CalibrationRow row;
    row.name = runs[i].name;
    row.repeats = runs[i].repeats;
    row.spread = runs[i].spread;
    row.measured_s = runs[i].measured_s;
    row.fitted_s = predict(prepared[i], consts, out.after);
    if (leave_one_out && prepared.size() > keys.size()) {
      std::vector<const Prepared*> others;
      for (std::size_t j = 0; j < prepared.size(); ++j)
        if (j != i) others.push_back(&prepared[j]);
      row.loo_s = predict(prepared[i], consts, fit(others, consts, out.after));
      out.mean_abs_loo += std::fabs(row.loo_error()) / double(prepared.size());
      out.max_abs_loo = std::max(out.max_abs_loo, std::fabs(row.loo_error()));
    }
    sq += row.residual() * row.residual();
    out.mean_abs_residual += std::fabs(row.residual()) / double(prepared.size());
    out.max_abs_residual = std::max(out.max_abs_residual, std::fabs(row.residual()));
    out.rows.push_back(row);
  }
  out.rms_residual = std::sqrt(sq / double(prepared.size()));
  return out;
}

std::string calibration_report(const Calibration& c) {
  std::ostringstream os;
  os << "fitted to " << c.rows.size() << " run" << (c.rows.size() == 1 ? "" : "s") << ":\n";
  for (std::size_t k = 0; k < c.keys.size(); ++k)
    os << "  " << c.keys[k] << ": " << fmt("%.4g", c.before[k]) << " -> " << fmt("%.4g", c.after[k]) << "\n";
  const bool loo = !c.rows.empty() && c.rows.front().loo_s > 0;
  std::vector<std::string> head{"run", "repeats", "spread", "measured", "fitted", "residual"};
  if (loo) head.push_back("leave-one-out"), head.push_back("LOO error");
  Table t(head);
  const auto sec = [](double s) { return s >= 1 ? fmt("%.3f s", s) : fmt("%.1f ms", 1e3 * s); };
  for (const CalibrationRow& r : c.rows) {
    std::vector<std::string> cells{r.name,
                                   std::to_string(r.repeats),
                                   r.repeats > 1 ? fmt("%.1f%%", 100 * r.spread) : std::string("-"),
                                   sec(r.measured_s),
                                   sec(r.fitted_s),
                                   fmt("%+.1f%%", 100 * r.residual())};
    if (loo) cells.push_back(sec(r.loo_s)), cells.push_back(fmt("%+.1f%%", 100 * r.loo_error()));
    t.add_row(cells);
  }
  os << "\n" << t.render(TableFormat::text) << "\n";
  os << "residuals: rms " << fmt("%.1f%%", 100 * c.rms_residual) << ", mean |.| "
     << fmt("%.1f%%", 100 * c.mean_abs_residual) << ", max |.| " << fmt("%.1f%%", 100 * c.max_abs_residual)
     << "\n";
  if (loo)
    os << "leave-one-out errors (each run predicted by a fit to the others): mean |.| "
       << fmt("%.1f%%", 100 * c.mean_abs_loo) << ", max |.| " << fmt("%.1f%%", 100 * c.max_abs_loo) << "\n";
  else
    os << "leave-one-out errors: need more runs than fitted constants\n";
  return os.str();
}

std::string calibrated_cluster_text(const std::string& original, const Calibration& c,
                                    const std::string& note) {
  std::vector<std::string> lines;
  {
    std::istringstream in(original);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  const auto set_key = [&](const std::string& key, const std::string& value, const std::string& comment) {
    const std::regex re("^" + key + "\\s*:.*$");
    for (std::string& line : lines)
      if (std::regex_match(line, re)) {
        std::string kept_comment;
        if (const auto hash = line.find(" #"); comment.empty() && hash != std::string::npos)
          kept_comment = line.substr(hash);
        line = key + ": " + value + (comment.empty() ? kept_comment : "   # " + comment);
        return;
      }
    lines.push_back(key + ": " + value + (comment.empty() ? "" : "   # " + comment));
  };
  const auto drop_key = [&](const std::string& key) {
    const std::regex re("^" + key + "\\s*:.*$");
    std::erase_if(lines, [&](const std::string& l) { return std::regex_match(l, re); });
  };
  std::string summary = "fitted ";
  for (std::size_t k = 0; k < c.keys.size(); ++k) {
    set_key(c.keys[k], fmt("%.4g", c.after[k]), "fitted by strata plan --calibrate (see calibration)");
    drop_key(c.keys[k] + "_range");  // fitted now: no longer an assumption
    summary += (k ? ", " : "") + c.keys[k];
  }
  summary += " to " + std::to_string(c.rows.size()) + " runs by strata plan --calibrate (residual rms " +
             fmt("%.1f%%", 100 * c.rms_residual);
  if (!c.rows.empty() && c.rows.front().loo_s > 0)
    summary += ", leave-one-out mean |error| " + fmt("%.1f%%", 100 * c.mean_abs_loo) + ", max " +
               fmt("%.1f%%", 100 * c.max_abs_loo);
  summary += ")";
  if (!note.empty()) summary += "; " + note;
  std::string quoted = "\"";
  for (char ch : summary) quoted += ch == '"' ? std::string("\\\"") : std::string(1, ch);
  set_key("calibration", quoted + "\"", "");
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

CalibrationRun read_calibration_run(const std::string& dir, const config::ClusterConfig& cluster,
                                    TimeBase base) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw make_error("run folder '", dir, "' does not exist");
  const fs::path cfg_file = d / "config.yaml";
  if (!fs::exists(cfg_file))
    throw make_error("'", cfg_file.string(), "' is missing (strata train writes it)");
  const config::JobConfig job = config::load_job_config(cfg_file.string());
  CalibrationRun run;
  run.name = (d.filename().empty() ? d.parent_path() : d).filename().string();
  run.workload = Workload::of(job.model, job.train.seq_len);

  int ranks = 0, nodes = 1;
  if (const fs::path job_file = d / "job.json"; fs::exists(job_file)) {
    std::ifstream in(job_file);
    try {
      const auto j = nlohmann::json::parse(in);
      nodes = j.at("nodes").get<int>(), ranks = j.at("ranks").get<int>();
    } catch (const nlohmann::json::exception& e) {
      throw make_error(job_file.string(), ": ", e.what());
    }
  }
  const config::ParallelConfig& par = job.parallel;
  if (ranks == 0) {
    if (par.dp <= 0)
      throw make_error(dir, ": cannot tell the number of ranks: no job.json (slurm/launch.sh writes it) and ",
                       "parallel.dp is 0 (derived) in config.yaml");
    ranks = par.tp * par.pp * par.dp;
  }
  Layout& l = run.layout;
  l.tp = par.tp, l.pp = par.pp, l.dp = par.dp > 0 ? par.dp : ranks / (par.tp * par.pp);
  l.vpp = par.schedule == config::PipelineSchedule::interleaved_1f1b ? par.virtual_stages : 1;
  l.gpipe = par.schedule == config::PipelineSchedule::gpipe && l.pp > 1;
  l.zb = par.schedule == config::PipelineSchedule::zb_h1;
  l.micro_batch = par.micro_batch_size;
  l.micro_batches = par.num_microbatches > 0    ? par.num_microbatches
                    : par.global_batch_size > 0 ? par.global_batch_size / (l.micro_batch * l.dp)
                                                : 1;
  l.zero = par.zero_stage;
  l.sequence_parallel = par.sequence_parallel && l.tp > 1;
  l.recompute = job.model.recompute == config::RecomputeKind::full ? Recompute::full : Recompute::none;
  l.precision = cluster.precision;
  if (l.gpus() != ranks)
    throw make_error(dir, ": tp x pp x dp = ", l.gpus(), " but the run had ", ranks, " ranks");
  run.ranks_per_node = std::max(1, ranks / std::max(1, nodes));

  const std::map<long, StepRecord> steps = read_step_metrics((d / "metrics.jsonl").string());
  const long n = long(steps.size());
  const long skip = n < 3 ? 0 : std::max(1L, n / 10);
  std::vector<double> ms;
  long i = 0;
  for (const auto& [step, r] : steps) {
    if (i++ < skip) continue;
    if (base == TimeBase::wall) {
      ms.push_back(r.step_ms);
    } else {
      if (r.cpu_ms < 0)
        throw make_error((d / "metrics.jsonl").string(), ": step ", step,
                         " has no cpu_ms (recorded by strata train since this version); use wall-clock time");
      // The cores the job's ranks on one node could keep busy: threads per rank (hardware.threads;
      // 0 = the slots shared by the node's ranks) times ranks, at most the node's slots.
      const int threads = job.hardware.threads > 0 ? job.hardware.threads
                                                   : std::max(1, cluster.gpus_per_node / run.ranks_per_node);
      const int cores = std::min(run.ranks_per_node * threads, cluster.gpus_per_node) * std::max(1, nodes);
      ms.push_back(r.cpu_ms / cores);
    }
  }
  if (ms.empty()) throw make_error(dir, ": no steps after warm-up");
  for (double x : ms) run.samples_s.push_back(x * 1e-3);
  run.measured_s = median(run.samples_s);
  const config::ModelConfig& m = job.model;
  std::ostringstream key;
  key << m.name << ' ' << m.num_layers << ' ' << m.d_model << ' ' << m.num_heads << ' ' << m.kv_heads() << ' '
      << m.ffn() << ' ' << m.vocab_size << ' ' << int(m.norm) << int(m.mlp) << int(m.positions)
      << int(m.attention) << int(m.tied_embeddings) << int(m.bias) << ' ' << job.train.seq_len << ' '
      << to_string(l) << ' ' << run.ranks_per_node << ' ' << nodes << ' ' << job.hardware.threads;
  run.key = key.str();
  return run;
}

std::vector<CalibrationRun> merge_repeats(const std::vector<CalibrationRun>& runs) {
  std::vector<CalibrationRun> out;
  std::vector<std::vector<double>> medians;
  for (const CalibrationRun& r : runs) {
    auto it = std::find_if(out.begin(), out.end(), [&](const CalibrationRun& o) { return o.key == r.key; });
    if (it == out.end()) {
      out.push_back(r);
      out.back().repeats = 1;
      medians.push_back({r.measured_s});
      continue;
    }
    it->samples_s.insert(it->samples_s.end(), r.samples_s.begin(), r.samples_s.end());
    it->repeats += 1;
    medians[std::size_t(it - out.begin())].push_back(r.measured_s);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!out[i].samples_s.empty()) out[i].measured_s = median(out[i].samples_s);
    const auto [mn, mx] = std::minmax_element(medians[i].begin(), medians[i].end());
    out[i].spread = out[i].measured_s > 0 ? (*mx - *mn) / out[i].measured_s : 0;
  }
  return out;
}

std::vector<CalibrationRun> reproducible_runs(const std::vector<CalibrationRun>& runs, double max_spread,
                                              std::vector<std::string>* dropped) {
  std::vector<CalibrationRun> out;
  for (const CalibrationRun& r : runs) {
    if (r.repeats > 1 && r.spread > max_spread) {
      if (dropped) dropped->push_back(r.name + " (" + fmt("%.1f%%", 100 * r.spread) + ")");
      continue;
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace strata::plan
