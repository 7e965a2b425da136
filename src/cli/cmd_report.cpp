// strata report scaling RUN_DIR... [--out PREFIX] [--skip N] [--cluster C]
// strata report scaling --study STUDY_DIR [--out PREFIX] ...
// A scaling study's table and plot from its run folders, or from the study folder that
// slurm/scaling_study.sh wrote (plan/scaling.hpp has the definitions): PREFIX.csv, PREFIX.md,
// and PREFIX.png drawn by gnuplot (pngcairo) from the script PREFIX.gp. Only finished runs are
// reported; the others (and a study's refused points) are listed with their reasons. Without
// gnuplot the CSV and Markdown are still written and the PNG is reported as skipped, with the
// reason.
// strata report run RUN_DIR... [--out PREFIX]: one or several training runs' curves overlaid
// (plan/run_report.hpp): PREFIX.png from PREFIX.gp and the per-run CSV files PREFIX.<i>.csv /
// PREFIX.<i>.valid.csv, and the summary PREFIX.md; the same gnuplot handling.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/run_report.hpp"
#include "strata/plan/scaling.hpp"

namespace strata::cli {

namespace {
namespace fs = std::filesystem;

struct ScalingOptions {
  std::vector<std::string> runs;
  std::string study, cluster;
  std::string out;
  int skip = -1;
  std::string gnuplot = "gnuplot";
  bool no_plot = false;
};

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw make_error("cannot write '", path.string(), "'");
}

// The gnuplot executable: a path as given, else the first match on PATH; "" when none.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return "";
}

// Runs `program script` and returns its exit status (-1 when it could not start).
int run_program(const std::string& program, const std::string& script) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl(program.c_str(), program.c_str(), script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void draw(const std::string& gnuplot, const fs::path& gp, const fs::path& png);

int run_scaling(const ScalingOptions& o) {
  if (o.study.empty() == o.runs.empty())
    throw make_error("report scaling: give the run folders, or --study STUDY_DIR (not both)");
  plan::ReportOptions ro;
  ro.skip = o.skip;
  ro.cluster = o.cluster;
  const plan::ScalingReport report =
      o.study.empty() ? plan::build_scaling_report(o.runs, ro) : plan::build_study_report(o.study, ro);

  const std::string out = !o.out.empty()    ? o.out
                          : o.study.empty() ? "scaling"
                                            : (fs::path(o.study) / "scaling").string();
  const fs::path prefix(out);
  if (prefix.has_parent_path()) fs::create_directories(prefix.parent_path());
  const fs::path csv = prefix.string() + ".csv", md = prefix.string() + ".md";
  const fs::path gp = prefix.string() + ".gp", png = prefix.string() + ".png";
  const std::string markdown = plan::scaling_markdown(report);
  write_file(csv, plan::scaling_csv(report));
  write_file(md, markdown);
  std::cout << markdown << "\n"
            << report.rows.size() << " finished run" << (report.rows.size() == 1 ? "" : "s") << " reported, "
            << report.failed.size() << " point" << (report.failed.size() == 1 ? "" : "s")
            << " without a result\n"
            << "wrote " << csv.string() << "\n"
            << "wrote " << md.string() << "\n";

  if (o.no_plot) {
    std::cout << "plot skipped (--no-plot)\n";
    return 0;
  }
  // The script names the files by absolute path, so it can be rerun from anywhere.
  write_file(gp, plan::scaling_gnuplot(report, fs::absolute(csv).string(), fs::absolute(png).string()));
  draw(o.gnuplot, gp, png);
  return 0;
}

// Runs the gnuplot script `gp`, which writes `png`, and says what happened (a missing or
// failing gnuplot is reported, not an error: the other files are written).
void draw(const std::string& gnuplot, const fs::path& gp, const fs::path& png) {
  const std::string program = find_program(gnuplot);
  if (program.empty()) {
    std::cout << "plot skipped: '" << gnuplot
              << "' not found (install gnuplot-nox, scripts/install-deps.sh); "
              << "the script is " << gp.string() << "\n";
    return;
  }
  fs::remove(png);
  const int rc = run_program(program, gp.string());
  if (rc != 0 || !fs::exists(png)) {
    std::cout << "plot skipped: " << program << " " << gp.string() << " failed (exit status " << rc << ")\n";
    return;
  }
  std::cout << "wrote " << png.string() << " (gnuplot script " << gp.string() << ")\n";
}

struct RunOptions {
  std::vector<std::string> runs;
  std::string out = "run";
  int skip = -1;
  std::string gnuplot = "gnuplot";
  bool no_plot = false;
};

int run_runs(const RunOptions& o) {
  std::vector<plan::RunMetrics> runs;
  for (const auto& dir : o.runs) runs.push_back(plan::read_run(dir, o.skip));
  plan::label_runs(runs);
  const fs::path prefix(o.out);
  if (prefix.has_parent_path()) fs::create_directories(prefix.parent_path());
  const fs::path md = prefix.string() + ".md", gp = prefix.string() + ".gp", png = prefix.string() + ".png";
  std::vector<std::string> steps_csv, valid_csv;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string stem = prefix.string() + "." + std::to_string(i + 1);
    steps_csv.push_back(fs::absolute(stem + ".csv").string());
    valid_csv.push_back(fs::absolute(stem + ".valid.csv").string());
    write_file(steps_csv.back(), plan::run_steps_csv(runs[i]));
    write_file(valid_csv.back(), plan::run_valid_csv(runs[i]));
  }
  const std::string markdown = plan::run_markdown(runs, o.no_plot ? "" : png.filename().string());
  write_file(md, markdown);
  std::cout << markdown << "\n";
  for (std::size_t i = 0; i < runs.size(); ++i)
    std::cout << "wrote " << steps_csv[i] << " (" << runs[i].label << ")\n";
  std::cout << "wrote " << md.string() << "\n";
  if (o.no_plot) {
    std::cout << "plot skipped (--no-plot)\n";
    return 0;
  }
  write_file(gp, plan::run_gnuplot(runs, steps_csv, valid_csv, fs::absolute(png).string()));
  draw(o.gnuplot, gp, png);
  return 0;
}
}  // namespace

Action add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Reports from run folders: strata report scaling|run RUN_DIR...");
  cmd->require_subcommand(1);
  auto* sc = cmd->add_subcommand("scaling",
                                 "A scaling study from its runs: CSV, Markdown table and PNG plot of "
                                 "tokens/s, TFLOP/s per rank, MFU and scaling efficiency");
  auto o = std::make_shared<ScalingOptions>();
  sc->add_option("runs", o->runs, "Run folders (metrics.jsonl, config.yaml, job.json)");
  sc->add_option("--study", o->study,
                 "A study folder written by slurm/scaling_study.sh (its study.jsonl lists the points)");
  sc->add_option("--cluster", o->cluster,
                 "Cluster file or name (configs/clusters) for the planner's predictions next to each run "
                 "(default with --study: the one the study checked its points against; else none)");
  sc->add_option(
      "-o,--out", o->out,
      "Output prefix: PREFIX.csv, PREFIX.md, PREFIX.gp, PREFIX.png (default: scaling, or STUDY_DIR/scaling)");
  sc->add_option("--skip", o->skip, "Warm-up steps left out of each run (default: a tenth, at least 1)");
  sc->add_option("--gnuplot", o->gnuplot, "gnuplot executable")->capture_default_str();
  sc->add_flag("--no-plot", o->no_plot, "Write the CSV and Markdown only");

  auto* rn = cmd->add_subcommand("run",
                                 "Training runs' curves overlaid (loss and validation loss, learning rate, "
                                 "gradient norm, tokens/s, MFU, memory, step time, waits): PNG and Markdown");
  auto r = std::make_shared<RunOptions>();
  rn->add_option("runs", r->runs, "Run folders (metrics.jsonl, config.yaml)")->required();
  rn->add_option("-o,--out", r->out, "Output prefix: PREFIX.png, PREFIX.md, PREFIX.gp, PREFIX.<i>.csv")
      ->capture_default_str();
  rn->add_option("--skip", r->skip,
                 "Warm-up steps left out of the throughput (default: a tenth, at least 1)");
  rn->add_option("--gnuplot", r->gnuplot, "gnuplot executable")->capture_default_str();
  rn->add_flag("--no-plot", r->no_plot, "Write the CSV and Markdown only");
  return [o, r, sc] { return sc->parsed() ? run_scaling(*o) : run_runs(*r); };
}

}  // namespace strata::cli
