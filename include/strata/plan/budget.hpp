// Compute budgets: from parameters and tokens (or a FLOP or dollar budget) to training FLOPs,
// GPU-hours, wall-clock days, cost and energy; the compute-optimal model for a FLOP budget
// (Hoffmann et al. 2022); and the built-in tables `strata budget --table seed|chinchilla`.
//
//   FLOPs C      = 6 N D                                  (Kaplan et al. 2020, sec. 2.1)
//   GPU-hours    = C / (peak x MFU) / 3600
//   days         = GPU-hours / GPUs / 24
//   cost         = GPU-hours x price per GPU-hour;   energy = GPU-hours x power
//
// Compute-optimal scaling (Hoffmann et al. 2022, "Training Compute-Optimal Large Language
// Models", sec. 3.1, approach 1, table 3): D_opt = k N^e with k and e fitted (least squares in
// log-log) to table 3's nine rows: e = 1.00753, k = 17.4098 (about 20 tokens per parameter,
// slowly rising). For a budget C, N_opt solves C = 6 N k N^e. The fitted exponents a = 1/(1+e)
// = 0.498 and b = e/(1+e) = 0.502 match the paper's a = 0.50, b = 0.50 (table 2, approach 1).
#pragma once
#include <string>
#include <vector>

namespace strata::plan {

struct Budget {
  double params = 0, tokens = 0, flops = 0;
  double peak_tflops = 0, mfu = 0;
  int gpus = 0;
  double price_per_gpu_hour = 0, power_watts = 0;
  // results
  double gpu_hours = 0, days = 0, cost = 0, energy_mwh = 0;
};

// Fills flops (when 0) and the results from params, tokens and the hardware assumptions.
Budget compute_budget(Budget b);

// The GPU-hours a budget of `dollars` buys at `price`, and the FLOPs they deliver.
double flops_for_dollars(double dollars, double price_per_gpu_hour, double peak_tflops, double mfu);

struct ComputeOptimal {
  double params = 0, tokens = 0, flops = 0;
};
ComputeOptimal chinchilla_for_flops(double flops);
ComputeOptimal chinchilla_for_params(double params);

// The smallest model the budget command will size (below it, "too small for any model").
inline constexpr double kMinModelParams = 1e6;

struct ChinchillaRow {
  double params;                      // table 3 "Parameters"
  double published_flops, published_tokens;
  ComputeOptimal predicted;
};
std::vector<ChinchillaRow> chinchilla_table();

struct SeedRow {
  std::string name;
  std::string hardware;               // accelerator and count the row assumes
  Budget budget;                      // params, tokens, hardware assumptions and results
  std::string published;              // the quoted figure being reproduced
  std::string sources;                // where every input comes from
  bool speculative = false;
};
std::vector<SeedRow> seed_table();

}  // namespace strata::plan
