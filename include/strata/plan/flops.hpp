// The work of training a model: exact parameter counts (strata's own parameter table) and the
// floating-point operations per token, per step and per run.
//
// Glossary (STYLE.md): L layers, C d_model, T sequence, V vocab, F MLP hidden, NH/NKV heads.
//
//   model FLOPs per token    = 6 N + 12 L T C                   (no recomputation counted)
//   hardware FLOPs per token = model + 2 (N - V C) + 4 L T C     (full recomputation: the layers'
//                                                                  forward again, not the output layer's)
//                            = model + 4 L T C                   (selective: attention core re-run)
//
// N = parameters that enter a matrix multiply (strata's `in_matmul`: every linear layer and the
// output layer; not the embedding lookup, norms or biases). 6 N: forward 2 N, backward 4 N
// multiply-adds per token (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
// sec. 2.1, table 1). 12 L T C: the two attention products Q K^T and A V, 2·2·T·C per token
// per layer forward, twice that backward (Narayanan et al. 2021, "Efficient Large-Scale
// Language Model Training on GPU Clusters Using Megatron-LM", sec. 5.1 / appendix, eq. 3,
// whose 72 B s L h^2 (1 + s/6h + V/12hL) is exactly 6 N + 12 L T C for a GPT with 4h MLP).
// Full recomputation repeats the forward (Chen et al. 2016; Narayanan et al. eq. 3's 96 = 4·24
// vs 72); selective recomputation repeats only the attention core (Korthikanti et al. 2022,
// "Reducing Activation Recomputation in Large Transformer Models", sec. 5).
//
// Budget tables use the simpler C = 6 N D with N = all parameters (Kaplan et al. sec. 2.1;
// Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", sec. 3).
#pragma once
#include <cstdint>
#include <string>

#include "strata/config/config.hpp"

namespace strata::plan {

enum class Recompute { none, selective, full };
const char* to_string(Recompute r);

struct ParameterCounts {
  std::int64_t total = 0;      // every element of strata's parameter table
  std::int64_t matmul = 0;     // N of the 6N rule
  std::int64_t per_layer = 0;  // one transformer block
  std::int64_t embedding = 0;  // token (and learned position) embeddings
  std::int64_t output = 0;     // untied output layer (0 when tied)
  std::int64_t final_norm = 0;
};

// Counted from make_parameter_table(model): the parameters strata trains, exactly.
ParameterCounts count_parameters(const config::ModelConfig& model);

struct FlopsPerToken {
  double model = 0;     // 6 N + 12 L T C: what MFU is measured against
  double hardware = 0;  // what runs, recomputation included
};

FlopsPerToken flops_per_token(const config::ModelConfig& model, const ParameterCounts& counts, int seq_len,
                              Recompute recompute);

// Training FLOPs of a run, C = 6 N D (N all parameters, D tokens).
inline double training_flops(double params, double tokens) { return 6.0 * params * tokens; }

// "6.74B", "340M", "1.2T" (decimal, 3 significant digits) and "3.14e+23".
std::string format_count(double v);
std::string format_sci(double v, int digits = 3);

// Accepts "70e9", "70B", "6.74b", "2T", "340M", "4k", "1.5e12"; throws naming `what`.
double parse_count(const std::string& text, const std::string& what);

}  // namespace strata::plan
