// strata budget: training FLOPs, GPU-hours, days, cost and energy of a run; the compute-optimal
// model for a FLOP or dollar budget; the built-in seed and Chinchilla tables.
//
//   strata budget --params 70B --tokens 2T --gpu a100_sxm_80gb --gpus 2048 --mfu 0.43
//   strata budget --flops 1e24 --gpu h100 --gpus 1024          (compute-optimal N and D)
//   strata budget --dollars 1e6 --gpu h100                      (what a budget buys)
//   strata budget --table seed|chinchilla [--approach 1|2|3] [--markdown | --csv]
//   (--csv and --markdown also for single budgets)
#include <iostream>

#include "commands.hpp"
#include "strata/config/cluster.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/budget.hpp"
#include "strata/plan/flops.hpp"
#include "strata/plan/table.hpp"

namespace strata::cli {

namespace {
struct BudgetOptions {
  std::string params, tokens, flops, dollars, model, cluster, table;
  int gpus = 0, approach = 1;
  double mfu = 0.4, price = -1, power = -1;
  bool csv = false, markdown = false;
};

plan::TableFormat format_of(const BudgetOptions& o) {
  return o.csv ? plan::TableFormat::csv : o.markdown ? plan::TableFormat::markdown : plan::TableFormat::text;
}

std::string money(double v) { return "$" + plan::format_count(v); }

std::string pct_error(double e, bool known) { return known ? plan::fmt("%+.0f%%", 100 * e) : "-"; }

int print_seed(const BudgetOptions& o) {
  plan::Table t({"model", "params", "tokens", "FLOPs", "hardware", "MFU (other run)", "days",
                 "published days", "days err", "GPU-hours", "published GPU-hours", "GPU-hours err", "$/GPU-h",
                 "cost"});
  const auto rows = plan::seed_table();
  for (const auto& r : rows) {
    const plan::Budget& b = r.budget;
    const bool days = r.published_days > 0 && b.gpus > 0;
    t.add_row({r.name, plan::format_count(b.params), plan::format_count(b.tokens), plan::format_sci(b.flops),
               r.hardware, plan::fmt("%.1f%%", 100 * b.mfu), b.gpus > 0 ? plan::fmt("%.1f", b.days) : "-",
               r.published_days > 0 ? plan::fmt("%g", r.published_days) : "-",
               pct_error(r.days_error(), days), plan::format_count(b.gpu_hours),
               r.published_gpu_hours > 0 ? plan::format_count(r.published_gpu_hours) : "-",
               pct_error(r.gpu_hours_error(), r.published_gpu_hours > 0),
               plan::fmt("%.3g", b.price_per_gpu_hour), money(b.cost)});
  }
  std::cout << t.render(format_of(o));
  if (o.csv) return 0;
  std::cout
      << "\nPredicted forward: FLOPs = 6 N D; GPU-hours = FLOPs / (peak x MFU) / 3600; days = GPU-hours / "
         "GPUs / 24. Every input is published; each MFU is that of a different published run on the same "
         "kind of hardware; error = predicted / published - 1. Costs are at the stated prices (no run "
         "published its cost).\n";
  for (const auto& r : rows) {
    const std::string head = o.markdown ? "- **" + r.name + "**" : "  " + r.name;
    std::cout << head << "\n    inputs: " << r.inputs << "\n    MFU: " << r.utilisation
              << "\n    published: " << r.outcome << "\n    price: " << r.price << "\n";
  }
  return 0;
}

int print_chinchilla(const BudgetOptions& o) {
  const plan::ChinchillaLaw law = plan::chinchilla_law(o.approach);
  plan::Table t({"params", "FLOPs", "tokens", "tokens/param", "published FLOPs", "published tokens",
                 "FLOPs err", "tokens err"});
  for (const auto& r : plan::chinchilla_table(o.approach))
    t.add_row({plan::format_count(r.params), plan::format_sci(r.predicted.flops),
               plan::format_count(r.predicted.tokens), plan::fmt("%.1f", r.predicted.tokens / r.params),
               plan::format_sci(r.published_flops), plan::format_count(r.published_tokens),
               plan::fmt("%+.1f%%", 100 * (r.predicted.flops / r.published_flops - 1)),
               plan::fmt("%+.1f%%", 100 * (r.predicted.tokens / r.published_tokens - 1))});
  std::cout << t.render(format_of(o));
  if (!o.csv)
    std::cout
        << "\nCompute-optimal FLOPs and tokens for each model size of Hoffmann et al. 2022 table 3 (their "
           "approach-1 projection, published columns) from the paper's "
        << law.describe << "; tokens = FLOPs / (6 N). --approach 1|2|3 selects the law.\n";
  return 0;
}

int run_budget(const BudgetOptions& o) {
  plan::chinchilla_law(o.approach);  // a bad --approach is an error whatever is asked
  if (!o.table.empty()) {
    if (o.table == "seed") return print_seed(o);
    if (o.table == "chinchilla") return print_chinchilla(o);
    throw make_error("--table: expected seed or chinchilla, got '", o.table, "'");
  }
  if (o.mfu <= 0 || o.mfu > 1) throw make_error("--mfu: expected a fraction in (0, 1], got ", o.mfu);
  plan::Budget b;
  std::string gpu = "accelerator";
  b.peak_tflops = 0;
  if (!o.cluster.empty()) {
    const config::ClusterConfig c =
        config::load_cluster_config(config::find_named_config(o.cluster, "clusters", "cluster"));
    b.peak_tflops = c.peak_tflops(), b.price_per_gpu_hour = c.price_per_gpu_hour,
    b.power_watts = c.power_watts;
    b.gpus = c.gpus_per_node;
    gpu = c.gpu;
  }
  if (o.price >= 0) b.price_per_gpu_hour = o.price;
  if (o.power >= 0) b.power_watts = o.power;
  if (o.gpus > 0) b.gpus = o.gpus;
  b.mfu = o.mfu;

  std::string how;
  if (!o.model.empty()) {
    const config::ModelConfig m =
        config::load_model_config(config::find_named_config(o.model, "models", "model"));
    b.params = double(plan::count_parameters(m).total);
  }
  if (!o.params.empty()) b.params = plan::parse_count(o.params, "--params");
  if (!o.tokens.empty()) b.tokens = plan::parse_count(o.tokens, "--tokens");
  double budget_flops = 0;
  if (!o.flops.empty()) budget_flops = plan::parse_count(o.flops, "--flops");
  if (!o.dollars.empty()) {
    if (b.peak_tflops <= 0)
      throw make_error("--dollars needs the hardware: name it with --gpu, e.g. --gpu h100");
    if (b.price_per_gpu_hour <= 0)
      throw make_error("--dollars needs a price: set --price or price_per_gpu_hour in the cluster file");
    budget_flops = plan::flops_for_dollars(plan::parse_count(o.dollars, "--dollars"), b.price_per_gpu_hour,
                                           b.peak_tflops, b.mfu);
  }
  if (budget_flops > 0) {
    plan::ComputeOptimal opt = plan::chinchilla_for_flops(budget_flops, o.approach);
    if (b.params > 0)
      opt = {b.params, budget_flops / (6.0 * b.params), budget_flops};  // model given: tokens it buys
    if (opt.params < plan::kMinModelParams) {
      const double need = plan::chinchilla_for_params(plan::kMinModelParams, o.approach).flops;
      throw make_error(
          "a budget of ", plan::format_sci(budget_flops),
          " FLOPs is too small for any model: its compute-"
          "optimal model has ",
          plan::format_count(opt.params), " parameters; raise the budget to at least ",
          plan::format_sci(need), " FLOPs",
          o.dollars.empty()
              ? ""
              : " (--dollars " +
                    plan::fmt("%.2f", need / budget_flops * plan::parse_count(o.dollars, "--dollars")) + ")",
          " for a 1M-parameter model trained on ~20 tokens per parameter");
    }
    b.params = opt.params, b.tokens = opt.tokens;
    how = o.params.empty() && o.model.empty()
              ? " (compute-optimal for the budget, Hoffmann et al. 2022 approach " +
                    std::to_string(o.approach) + ")"
              : " (tokens: what the budget buys)";
  }
  if (b.params <= 0 || b.tokens <= 0)
    throw make_error("give --params (or --model) and --tokens, or a budget with --flops or --dollars");
  b = plan::compute_budget(b);
  if (o.csv || o.markdown) {  // one row, the same columns whatever was given
    plan::Table t({"params", "tokens", "tokens_per_param", "flops", "gpu", "gpus", "peak_tflops", "mfu",
                   "gpu_hours", "days", "price_per_gpu_hour", "cost", "power_watts", "energy_mwh", "sizing"});
    const bool hw = b.peak_tflops > 0;
    t.add_row({plan::fmt("%.6g", b.params), plan::fmt("%.6g", b.tokens),
               plan::fmt("%.4g", b.tokens / b.params), plan::fmt("%.6g", b.flops), hw ? gpu : "",
               hw ? std::to_string(b.gpus) : "", hw ? plan::fmt("%g", b.peak_tflops) : "",
               hw ? plan::fmt("%g", b.mfu) : "", hw ? plan::fmt("%.6g", b.gpu_hours) : "",
               hw && b.gpus > 0 ? plan::fmt("%.4g", b.days) : "",
               hw ? plan::fmt("%g", b.price_per_gpu_hour) : "", hw ? plan::fmt("%.6g", b.cost) : "",
               hw ? plan::fmt("%g", b.power_watts) : "", hw ? plan::fmt("%.4g", b.energy_mwh) : "",
               how.empty() ? "given" : how.substr(2, how.size() - 3)});
    std::cout << t.render(format_of(o));
    return 0;
  }
  std::cout << "parameters     " << plan::format_count(b.params) << how << "\n"
            << "tokens         " << plan::format_count(b.tokens) << " ("
            << plan::fmt("%.1f", b.tokens / b.params) << " per parameter)\n"
            << "training FLOPs " << plan::format_sci(b.flops) << " (6 N D)\n";
  if (b.peak_tflops <= 0) {
    std::cout << "(name the hardware with --gpu, e.g. --gpu h100, for GPU-hours, days, cost and energy)\n";
    return 0;
  }
  std::cout << "hardware       " << b.gpus << " x " << gpu << ", " << plan::fmt("%g", b.peak_tflops)
            << " TFLOP/s peak at " << plan::fmt("%.0f%%", 100 * b.mfu) << " MFU\n"
            << "GPU-hours      " << plan::format_count(b.gpu_hours) << "\n"
            << "wall clock     " << plan::fmt("%.1f", b.days) << " days on " << b.gpus << " GPUs\n"
            << "cost           " << money(b.cost) << " at $" << plan::fmt("%.2f", b.price_per_gpu_hour)
            << "/GPU-hour\n"
            << "energy         " << plan::fmt("%.1f", b.energy_mwh) << " MWh at "
            << plan::fmt("%g", b.power_watts) << " W per GPU\n";
  return 0;
}
}  // namespace

Action add_budget_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("budget",
                                 "Compute budgets: FLOPs, GPU-hours, days, cost, energy; compute-optimal "
                                 "sizes; the seed and Chinchilla tables");
  auto o = std::make_shared<BudgetOptions>();
  cmd->add_option("--params", o->params, "Parameters, e.g. 70B or 7e10");
  cmd->add_option("--model", o->model, "Model file or name: its exact parameter count");
  cmd->add_option("--tokens", o->tokens, "Training tokens, e.g. 2T");
  cmd->add_option("--flops", o->flops,
                  "FLOP budget: size the compute-optimal model (or the tokens for --params)");
  cmd->add_option("--dollars", o->dollars, "Dollar budget, converted to FLOPs at the price, peak and MFU");
  cmd->add_option("--cluster,--gpu", o->cluster, "Cluster file or name: peak, price and power per GPU");
  cmd->add_option("--gpus", o->gpus, "GPUs for the wall-clock estimate (default: one node)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--mfu", o->mfu, "Model FLOPs utilisation")->capture_default_str();
  cmd->add_option("--price", o->price, "$ per GPU-hour (overrides the cluster file)");
  cmd->add_option("--power", o->power, "Watts per GPU (overrides the cluster file)");
  cmd->add_option("--table", o->table, "Built-in table: seed or chinchilla");
  cmd->add_option("--approach", o->approach,
                  "Hoffmann et al. 2022 law for compute-optimal sizes and --table chinchilla: 1, 2 or 3")
      ->capture_default_str();
  auto* csv = cmd->add_flag("--csv", o->csv, "Tables and single budgets as CSV");
  cmd->add_flag("--markdown", o->markdown, "Tables and single budgets as Markdown")->excludes(csv);
  return [o] { return run_budget(*o); };
}

}  // namespace strata::cli
