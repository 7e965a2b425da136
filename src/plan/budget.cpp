// Budgets, compute-optimal sizing and the built-in tables; formulas and sources in budget.hpp.
#include "strata/plan/budget.hpp"

#include <cmath>

#include "strata/core/error.hpp"
#include "strata/plan/flops.hpp"

namespace strata::plan {

namespace {
// Approaches 1 and 2: N_opt = N_c (C / C_c)^a through Chinchilla (Hoffmann et al. 2022, abstract:
// "the same compute budget as Gopher but with 70B parameters"; Gopher's budget 5.76e23 FLOPs,
// table 3 / sec. 4.1).
constexpr double kChinchillaParams = 70e9, kGopherFlops = 5.76e23;
// Approach 3: the parametric loss's constants (sec. 3.3 / appendix D.2; alpha and beta unrounded).
constexpr double kA = 406.4, kB = 410.7, kAlpha = 0.3392, kBeta = 0.2849;

// N_opt = G (C/6)^a for approach 3.
double approach3_a() { return kBeta / (kAlpha + kBeta); }
double approach3_g() { return std::pow(kAlpha * kA / (kBeta * kB), 1.0 / (kAlpha + kBeta)); }
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

ChinchillaLaw chinchilla_law(int approach) {
  switch (approach) {
    case 1:
      return {1, 0.50,
              "approach 1 (fixed model sizes): N_opt ∝ C^0.50 (Hoffmann et al. 2022 table 2) through "
              "Chinchilla, 70B parameters at 5.76e23 FLOPs"};
    case 2:
      return {2, 0.49,
              "approach 2 (IsoFLOP profiles): N_opt ∝ C^0.49 (Hoffmann et al. 2022 table 2) through "
              "Chinchilla, 70B parameters at 5.76e23 FLOPs"};
    case 3:
      return {
          3, approach3_a(),
          "approach 3 (parametric loss): L = 1.69 + 406.4/N^0.3392 + 410.7/D^0.2849 minimised at C = 6ND: "
          "N_opt = " +
              std::to_string(approach3_g()).substr(0, 5) + " (C/6)^" +
              std::to_string(approach3_a()).substr(0, 5) + " (Hoffmann et al. 2022 sec. 3.3, eq. 4)"};
    default: throw make_error("--approach: Hoffmann et al. 2022 has approaches 1, 2 and 3, got ", approach);
  }
}

ComputeOptimal chinchilla_for_params(double params, int approach) {
  const ChinchillaLaw law = chinchilla_law(approach);
  ComputeOptimal c;
  c.params = params;
  // Invert N_opt(C) for the budget whose compute-optimal model has `params` parameters.
  c.flops = approach == 3 ? 6.0 * std::pow(params / approach3_g(), 1.0 / law.a)
                          : kGopherFlops * std::pow(params / kChinchillaParams, 1.0 / law.a);
  c.tokens = c.flops / (6.0 * params);
  return c;
}

ComputeOptimal chinchilla_for_flops(double flops, int approach) {
  const ChinchillaLaw law = chinchilla_law(approach);
  const double n = approach == 3 ? approach3_g() * std::pow(flops / 6.0, law.a)
                                 : kChinchillaParams * std::pow(flops / kGopherFlops, law.a);
  return {n, flops / (6.0 * n), flops};
}

std::vector<ChinchillaRow> chinchilla_table(int approach) {
  // Hoffmann et al. 2022, table 3: parameters, FLOPs, tokens (their approach-1 projection).
  const double rows[][3] = {{400e6, 1.92e19, 8.0e9},   {1e9, 1.21e20, 20.2e9},   {10e9, 1.23e22, 205.1e9},
                            {67e9, 5.76e23, 1.5e12},   {175e9, 3.85e24, 3.7e12}, {280e9, 9.90e24, 5.9e12},
                            {520e9, 3.43e25, 11.0e12}, {1e12, 1.27e26, 21.2e12}, {10e12, 1.30e28, 216.2e12}};
  std::vector<ChinchillaRow> out;
  for (const auto& r : rows) out.push_back({r[0], r[1], r[2], chinchilla_for_params(r[0], approach)});
  return out;
}

double bert_large_tokens() {
  const double steps = 1e6, batch = 256;
  return batch * (0.9 * steps * 128 + 0.1 * steps * 512);
}

std::vector<SeedRow> seed_table() {
  std::vector<SeedRow> rows;
  auto row = [&](SeedRow r, double params, double tokens, double peak, double mfu, int gpus, double price,
                 double watts) {
    Budget b;
    b.params = params, b.tokens = tokens, b.peak_tflops = peak, b.mfu = mfu, b.gpus = gpus;
    b.price_per_gpu_hour = price, b.power_watts = watts;
    r.budget = compute_budget(b);
    rows.push_back(std::move(r));
  };
  // Utilisations from other published runs on the same kind of hardware (model FLOPs / peak).
  // Gopher 280B on 4096 TPU v3: 32.5% MFU; Megatron-Turing NLG 530B on 2240 A100: 30.2% MFU
  // (Chowdhery et al. 2022, "PaLM", table 3). Megatron-LM 8.3B on 512 V100: 15.1 PFLOP/s
  // sustained, 29.5 TFLOP/s per GPU = 23.6% of 125 (Shoeybi et al. 2019, sec. 1 and 5.1).
  const double tpu_mfu = 0.325, a100_mfu = 0.302, v100_mfu = 15.1e15 / 512 / 125e12;

  SeedRow bert;
  bert.name = "BERT-Large";
  bert.hardware = "64 TPU v2 chips (16 Cloud TPUs)";
  bert.published_days = 4;
  bert.published_gpu_hours = 4 * 24 * 64;
  bert.inputs =
      "Devlin et al. 2019: 340M parameters (sec. 3); 1M steps of 256 sequences, 90% of them of 128 "
      "tokens and 10% of 512 (sec. A.2) = 42.6B tokens; 16 Cloud TPUs = 64 TPU v2 chips (sec. A.2) at "
      "45 TFLOP/s bf16 each (Google: 180 TFLOP/s per 4-chip Cloud TPU v2)";
  bert.utilisation =
      "32.5% MFU of Gopher 280B on TPU v3 (Chowdhery et al. 2022, table 3): no published TPU v2 "
      "utilisation of transformer training was found, so the TPU v3 figure stands in for it";
  bert.outcome =
      "'Each pretraining took 4 days to complete' (Devlin et al. 2019, sec. A.2); chip-hours = 4 days "
      "x 24 h x 64 chips";
  bert.price =
      "$4.50 per Cloud TPU v2-hour (Google Cloud on-demand, 2018) = $1.125 per chip-hour; 250 W per "
      "chip assumed";
  row(bert, 340e6, bert_large_tokens(), 45.0, tpu_mfu, 64, 1.125, 250);

  SeedRow gpt3;
  gpt3.name = "GPT-3 175B";
  gpt3.hardware = "10,000 V100";
  gpt3.published_days = 14.8;
  gpt3.published_gpu_hours = 14.8 * 24 * 10000;
  gpt3.inputs =
      "Brown et al. 2020: 175B parameters, 300B tokens (table 2.1, D.1; 6ND = 3.15e23 FLOPs, paper "
      "3.14e23); 10,000 V100 (Patterson et al. 2021, table 4) at 125 TFLOP/s (V100 SXM2 tensor cores)";
  gpt3.utilisation =
      "23.6% of peak: Megatron-LM's 8.3B model sustained 15.1 PFLOP/s on 512 V100, 29.5 TFLOP/s per "
      "GPU (Shoeybi et al. 2019, sec. 1, 5.1; if that count includes the recomputed forward, the "
      "model-FLOP share is 3/4 of it)";
  gpt3.outcome =
      "14.8 days on 10,000 V100 (Patterson et al. 2021, 'Carbon Emissions and Large Neural Network "
      "Training', table 4); GPU-hours = 14.8 x 24 x 10,000";
  gpt3.price =
      "$1.50 per V100-hour (Lambda Labs' 2020 cloud price, as in its GPT-3 estimate); 300 W per V100";
  row(gpt3, 175e9, 300e9, 125.0, v100_mfu, 10000, 1.50, 300);

  SeedRow llama1;
  llama1.name = "LLaMA-1 65B";
  llama1.hardware = "2,048 A100 80GB";
  llama1.published_days = 21;
  llama1.published_gpu_hours = 1022362;
  llama1.inputs =
      "Touvron et al. 2023a ('LLaMA'): 65.2B parameters, 1.4T tokens (table 2), 2,048 A100 80GB "
      "(sec. 2.4) at 312 TFLOP/s bf16";
  llama1.utilisation = "30.2% MFU of Megatron-Turing NLG 530B on 2,240 A100 (Chowdhery et al. 2022, table 3)";
  llama1.outcome = "'approximately 21 days' (sec. 2.4); 1,022,362 GPU-hours (table 15)";
  llama1.price = "$5.12 per A100 80GB-hour (AWS p4de.24xlarge on-demand, $40.97 per 8 GPUs); 400 W per GPU";
  row(llama1, 65.2e9, 1.4e12, 312.0, a100_mfu, 2048, 5.12, 400);

  SeedRow llama2;
  llama2.name = "LLaMA-2 70B";
  llama2.hardware = "A100 80GB (count not published)";
  llama2.published_gpu_hours = 1720320;
  llama2.inputs =
      "Touvron et al. 2023b ('Llama 2'): 70B parameters, 2.0T tokens (table 1), A100 80GB (sec. 2.2.1) "
      "at 312 TFLOP/s bf16; GPU count not published, so no days";
  llama2.utilisation = llama1.utilisation;
  llama2.outcome = "1,720,320 A100-80GB GPU-hours (table 2)";
  llama2.price = llama1.price;
  row(llama2, 70e9, 2e12, 312.0, a100_mfu, 0, 5.12, 400);
  return rows;
}

}  // namespace strata::plan
