// Budgets, compute-optimal sizing and the built-in tables; formulas and sources in budget.hpp.
#include "strata/plan/budget.hpp"

#include <cmath>

#include "strata/plan/flops.hpp"

namespace strata::plan {

namespace {
// D_opt = k N^e, least squares in log-log through Hoffmann et al. 2022 table 3 (see budget.hpp).
constexpr double kTokensCoeff = 17.4098;
constexpr double kTokensExponent = 1.00753;
}  // namespace

Budget compute_budget(Budget b) {
  if (b.flops <= 0) b.flops = training_flops(b.params, b.tokens);
  const double rate = b.peak_tflops * 1e12 * b.mfu;  // FLOP/s per accelerator actually delivered
  b.gpu_hours = rate > 0 ? b.flops / rate / 3600.0 : 0.0;
  b.days = b.gpus > 0 ? b.gpu_hours / b.gpus / 24.0 : 0.0;
  b.cost = b.gpu_hours * b.price_per_gpu_hour;
  b.energy_mwh = b.gpu_hours * b.power_watts / 1e6;
  return b;
}

double flops_for_dollars(double dollars, double price_per_gpu_hour, double peak_tflops, double mfu) {
  return dollars / price_per_gpu_hour * 3600.0 * peak_tflops * 1e12 * mfu;
}

ComputeOptimal chinchilla_for_params(double params) {
  ComputeOptimal c;
  c.params = params;
  c.tokens = kTokensCoeff * std::pow(params, kTokensExponent);
  c.flops = training_flops(c.params, c.tokens);
  return c;
}

ComputeOptimal chinchilla_for_flops(double flops) {
  // C = 6 N k N^e  =>  N = (C / (6 k))^(1 / (1 + e))
  return chinchilla_for_params(std::pow(flops / (6.0 * kTokensCoeff), 1.0 / (1.0 + kTokensExponent)));
}

std::vector<ChinchillaRow> chinchilla_table() {
  // Hoffmann et al. 2022, table 3: parameters, FLOPs, tokens (approach 1).
  const double rows[][3] = {{400e6, 1.92e19, 8.0e9},     {1e9, 1.21e20, 20.2e9},    {10e9, 1.23e22, 205.1e9},
                            {67e9, 5.76e23, 1.5e12},     {175e9, 3.85e24, 3.7e12},  {280e9, 9.90e24, 5.9e12},
                            {520e9, 3.43e25, 11.0e12},   {1e12, 1.27e26, 21.2e12},  {10e12, 1.30e28, 216.2e12}};
  std::vector<ChinchillaRow> out;
  for (const auto& r : rows) out.push_back({r[0], r[1], r[2], chinchilla_for_params(r[0])});
  return out;
}

std::vector<SeedRow> seed_table() {
  std::vector<SeedRow> rows;
  auto row = [&](std::string name, std::string hw, double params, double tokens, double peak, double mfu, int gpus,
                 double price, double watts, std::string published, std::string sources, bool speculative) {
    Budget b;
    b.params = params, b.tokens = tokens, b.peak_tflops = peak, b.mfu = mfu, b.gpus = gpus;
    b.price_per_gpu_hour = price, b.power_watts = watts;
    rows.push_back({std::move(name), std::move(hw), compute_budget(b), std::move(published), std::move(sources),
                    speculative});
  };
  row("BERT-Large", "64 TPU v2 chips (16 Cloud TPUs)", 340e6, 128e9, 45.0, 0.26, 64, 1.125, 250,
      "4 days on 16 Cloud TPUs",
      "Devlin et al. 2019 sec. A.2: 340M parameters, 1M steps x 128,000 tokens (about 40 epochs of the "
      "3.3B-word corpus), 'BERT-Large was trained on 16 Cloud TPUs (64 TPU chips total)... 4 days'; TPU v2: "
      "180 TFLOP/s bf16 per 4-chip Cloud TPU (45 per chip); 26% utilisation is what the 4 days imply; "
      "price $4.50 per Cloud TPU v2 device-hour (2018 on-demand) = $1.125 per chip-hour; 250 W per chip assumed",
      false);
  row("GPT-3 175B", "10,000 V100 32GB", 175e9, 300e9, 125.0, 0.224, 10000, 1.50, 300, "3.14e23 FLOPs, ~$4.6M",
      "Brown et al. 2020 table D.1 (175B parameters, 300B tokens, 3.14e23 FLOPs); Lambda Labs 2020 "
      "('OpenAI's GPT-3 Language Model: A Technical Overview'): 28 TFLOP/s sustained per V100 (22.4% of the "
      "125 TFLOP/s tensor-core peak) at $1.50 per GPU-hour = 355 GPU-years, ~$4.6M; 10,000 GPUs as in "
      "Microsoft's 2020 supercomputer for OpenAI; 300 W per V100 SXM2",
      false);
  row("LLaMA-2 70B", "2,048 A100 80GB", 70e9, 2e12, 312.0, 0.435, 2048, 6.00, 400,
      "1,720,320 GPU-hours, ~$10M+",
      "Touvron et al. 2023 ('Llama 2'), sec. 2.2 and table 2: 70B parameters, 2.0T tokens, 1,720,320 A100-80GB "
      "GPU-hours at 400 W; 43.5% MFU is what those GPU-hours imply at 312 TFLOP/s bf16; $6.00 per GPU-hour "
      "assumed (on-demand A100 80GB with networking and storage; AWS p4de list is $5.12 per GPU-hour before "
      "them); 2,048 GPUs assumed (Meta states no count)",
      false);
  row("GPT-4 (speculative)", "25,000 A100 80GB", 1e12, 10e12, 312.0, 0.40, 25000, 0.75, 400,
      "~$100M (speculative)",
      "SPECULATIVE: OpenAI has published no size, data or cost. ~1T parameters and ~10T tokens are a dense-model "
      "guess; Altman: 'more than $100 million' (Wired, April 2023); 25,000 A100s, 40% MFU and $0.75 per "
      "GPU-hour (owned-cluster cost) are assumptions; leaked reports describe a mixture of experts with fewer "
      "active parameters, which would need fewer FLOPs",
      true);
  return rows;
}

}  // namespace strata::plan
