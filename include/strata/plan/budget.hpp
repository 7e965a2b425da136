// Compute budgets: from parameters and tokens (or a FLOP or dollar budget) to training FLOPs,
// GPU-hours, wall-clock days, cost and energy; the compute-optimal model for a FLOP budget
// (Hoffmann et al. 2022); and the built-in tables `strata budget --table seed|chinchilla`.
//
//   FLOPs C      = 6 N D                                  (Kaplan et al. 2020, sec. 2.1)
//   GPU-hours    = C / (peak x MFU) / 3600
//   days         = GPU-hours / GPUs / 24
//   cost         = GPU-hours x price per GPU-hour;   energy = GPU-hours x power
//
// Compute-optimal scaling: Hoffmann et al. 2022, "Training Compute-Optimal Large Language
// Models", three approaches, each a law N_opt(C) (D_opt = C / (6 N_opt)), taken from the paper,
// not fitted to its table 3:
//   approach 1 (fixed model sizes, sec. 3.1) and 2 (IsoFLOP profiles, sec. 3.2): N_opt ∝ C^a with
//     the paper's a = 0.50 and 0.49 (table 2). The paper gives no coefficient; the law passes
//     through its own compute-optimal model, Chinchilla: 70B parameters for Gopher's 5.76e23 FLOPs
//     (abstract, sec. 4.1).
//   approach 3 (parametric loss, sec. 3.3, eq. 2 and 4): L(N, D) = E + A / N^alpha + B / D^beta,
//     minimised under C = 6 N D:  N_opt = G (C/6)^a, a = beta / (alpha + beta),
//     G = (alpha A / (beta B))^(1 / (alpha + beta)); E = 1.69, A = 406.4, B = 410.7 and the
//     unrounded alpha = 0.3392, beta = 0.2849 of the paper's TeX source (the body's rounded 0.34
//     and 0.28 shift N_opt by ~20% at Gopher's budget; Besiroglu et al. 2024, "Chinchilla
//     scaling: a replication attempt", sec. 2).
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

// ---- compute-optimal models (Hoffmann et al. 2022) -----------------------------------------
struct ComputeOptimal {
  double params = 0, tokens = 0, flops = 0;
};

struct ChinchillaLaw {
  int approach = 1;      // 1, 2 or 3
  double a = 0.5;        // N_opt ∝ C^a
  std::string describe;  // the law and its source, one line
};
// Throws for an approach other than 1, 2, 3.
ChinchillaLaw chinchilla_law(int approach);

ComputeOptimal chinchilla_for_flops(double flops, int approach = 1);
ComputeOptimal chinchilla_for_params(double params, int approach = 1);

// The smallest model the budget command will size (below it, "too small for any model").
inline constexpr double kMinModelParams = 1e6;

// Hoffmann et al. 2022 table 3 (parameters, FLOPs, tokens) next to what a law gives for the same
// parameter count: the compute-optimal FLOPs and tokens.
struct ChinchillaRow {
  double params;
  double published_flops, published_tokens;
  ComputeOptimal predicted;
};
std::vector<ChinchillaRow> chinchilla_table(int approach = 1);

// ---- the seed table: training runs people quote, predicted forward -------------------------
// Every input is published (parameters, tokens, accelerators and their count, dense peak) and the
// utilisation comes from a different published run on the same kind of hardware; the predicted
// days and GPU-hours are then compared with the published ones. Prices are assumptions (cost).
struct SeedRow {
  std::string name;
  std::string hardware;            // accelerator and count
  Budget budget;                   // the prediction (budget.gpus 0: count not published, no days)
  double published_days = 0;       // 0: not published
  double published_gpu_hours = 0;  // 0: not published
  std::string inputs;              // where parameters, tokens and hardware come from
  std::string utilisation;         // where the MFU comes from
  std::string outcome;             // where the published days / GPU-hours come from
  std::string price;               // the price assumption
  double days_error() const {
    return published_days > 0 && budget.days > 0 ? budget.days / published_days - 1 : 0;
  }
  double gpu_hours_error() const {
    return published_gpu_hours > 0 ? budget.gpu_hours / published_gpu_hours - 1 : 0;
  }
};
std::vector<SeedRow> seed_table();

// BERT's tokens from its sequence-length schedule (Devlin et al. 2019, sec. A.2): 1,000,000 steps
// of 256 sequences, the first 90% of 128 tokens, the last 10% of 512.
double bert_large_tokens();

}  // namespace strata::plan
