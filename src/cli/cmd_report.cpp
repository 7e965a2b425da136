// strata report scaling RUN_DIR... [--out PREFIX] [--skip N] [--cluster C]
// strata report scaling --study STUDY_DIR [--out PREFIX] ...
// A scaling study's table and plot from its run folders, or from the study folder that
// slurm/scaling_study.sh wrote (plan/scaling.hpp has the definitions): PREFIX.csv, PREFIX.md,
// and PREFIX.png drawn by gnuplot (pngcairo) from the script PREFIX.gp. Only finished runs are
// reported; the others (and a study's refused points) are listed with their reasons. Without
// gnuplot the CSV and Markdown are still written and the PNG is reported as skipped, with the
// reason.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "strata/core/error.hpp"
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

int run_scaling(const ScalingOptions& o) {
  if (o.study.empty() == o.runs.empty())
    throw make_error("report scaling: give the run folders, or --study STUDY_DIR (not both)");
  plan::ReportOptions ro;
  ro.skip = o.skip;
  ro.cluster = o.cluster;
  const plan::ScalingReport report =
      o.study.empty() ? plan::build_scaling_report(o.runs, ro) : plan::build_study_report(o.study, ro);

  const std::string out = !o.out.empty() ? o.out : o.study.empty() ? "scaling" : (fs::path(o.study) / "scaling").string();
  const fs::path prefix(out);
  if (prefix.has_parent_path()) fs::create_directories(prefix.parent_path());
  const fs::path csv = prefix.string() + ".csv", md = prefix.string() + ".md";
  const fs::path gp = prefix.string() + ".gp", png = prefix.string() + ".png";
  const std::string markdown = plan::scaling_markdown(report);
  write_file(csv, plan::scaling_csv(report));
  write_file(md, markdown);
  std::cout << markdown << "\n"
            << report.rows.size() << " finished run" << (report.rows.size() == 1 ? "" : "s") << " reported, "
            << report.failed.size() << " point" << (report.failed.size() == 1 ? "" : "s") << " without a result\n"
            << "wrote " << csv.string() << "\n"
            << "wrote " << md.string() << "\n";

  if (o.no_plot) {
    std::cout << "plot skipped (--no-plot)\n";
    return 0;
  }
  // The script names the files by absolute path, so it can be rerun from anywhere.
  write_file(gp, plan::scaling_gnuplot(report, fs::absolute(csv).string(), fs::absolute(png).string()));
  const std::string program = find_program(o.gnuplot);
  if (program.empty()) {
    std::cout << "plot skipped: '" << o.gnuplot << "' not found (install gnuplot-nox, scripts/install-deps.sh); "
              << "the script is " << gp.string() << "\n";
    return 0;
  }
  fs::remove(png);
  const int rc = run_program(program, gp.string());
  if (rc != 0 || !fs::exists(png)) {
    std::cout << "plot skipped: " << program << " " << gp.string() << " failed (exit status " << rc << ")\n";
    return 0;
  }
  std::cout << "wrote " << png.string() << " (gnuplot script " << gp.string() << ")\n";
  return 0;
}
}  // namespace

Action add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Reports from run folders: strata report scaling RUN_DIR...");
  cmd->require_subcommand(1);
  auto* sc = cmd->add_subcommand("scaling", "A scaling study from its runs: CSV, Markdown table and PNG plot of "
                                            "tokens/s, TFLOP/s per rank, MFU and scaling efficiency");
  auto o = std::make_shared<ScalingOptions>();
  sc->add_option("runs", o->runs, "Run folders (metrics.jsonl, config.yaml, job.json)");
  sc->add_option("--study", o->study, "A study folder written by slurm/scaling_study.sh (its study.jsonl lists the points)");
  sc->add_option("--cluster", o->cluster,
                 "Cluster file or name (configs/clusters) for the planner's predictions next to each run "
                 "(default with --study: the one the study checked its points against; else none)");
  sc->add_option("-o,--out", o->out,
                 "Output prefix: PREFIX.csv, PREFIX.md, PREFIX.gp, PREFIX.png (default: scaling, or STUDY_DIR/scaling)");
  sc->add_option("--skip", o->skip, "Warm-up steps left out of each run (default: a tenth, at least 1)");
  sc->add_option("--gnuplot", o->gnuplot, "gnuplot executable")->capture_default_str();
  sc->add_flag("--no-plot", o->no_plot, "Write the CSV and Markdown only");
  return [o] { return run_scaling(*o); };
}

}  // namespace strata::cli
