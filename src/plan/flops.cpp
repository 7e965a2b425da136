// Parameter counts and FLOPs per token; the formulas and their sources are in flops.hpp.
#include "strata/plan/flops.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "strata/core/error.hpp"
#include "strata/model/transformer.hpp"

namespace strata::plan {

const char* to_string(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
  }
  return "?";
}

ParameterCounts count_parameters(const config::ModelConfig& model) {
  const model::ParameterTable table = model::make_parameter_table(model);
  ParameterCounts c;
  c.total = table.numel();
  c.matmul = table.matmul_numel();
  for (const auto& p : table.entries()) {
    if (p.name.starts_with("layers.0."))
      c.per_layer += p.numel;
    else if (p.name.starts_with("embed."))
      c.embedding += p.numel;
    else if (p.name.starts_with("lm_head."))
      c.output += p.numel;
    else if (p.name.starts_with("final_norm."))
      c.final_norm += p.numel;
  }
  return c;
}

FlopsPerToken flops_per_token(const config::ModelConfig& model, const ParameterCounts& counts, int seq_len,
                              Recompute recompute) {
  const double N = double(counts.matmul);
  const double attn = double(model.num_layers) * double(seq_len) * double(model.d_model);  // L T C
  FlopsPerToken f;
  f.model = 6.0 * N + 12.0 * attn;  // Kaplan et al. 2020 sec. 2.1; Narayanan et al. 2021 eq. 3
  f.hardware = f.model;
  // Full recomputation re-runs every layer's forward, not the output layer's (strata and
  // Megatron-LM recompute per layer): 2 (N - V C) + 4 L T C more.
  const double head = double(model.vocab_size) * double(model.d_model);
  if (recompute == Recompute::full) f.hardware += 2.0 * (N - head) + 4.0 * attn;
  if (recompute == Recompute::selective) f.hardware += 4.0 * attn;  // attention core forward
  return f;
}

std::string format_count(double v) {
  const char* suffix[] = {"", "K", "M", "B", "T", "P", "E"};
  int s = 0;
  double a = std::fabs(v);
  while (a >= 1000.0 && s < 6) a /= 1000.0, v /= 1000.0, ++s;
  char buf[32];
  std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f%s" : a >= 10 ? "%.1f%s" : "%.2f%s", v, suffix[s]);
  return buf;
}

std::string format_sci(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
  return buf;
}

double parse_count(const std::string& text, const std::string& what) {
  const char* s = text.c_str();
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s) throw make_error(what, ": expected a number such as 70e9 or 70B, got '", text, "'");
  std::string rest(end);
  double scale = 1;
  if (rest == "k" || rest == "K")
    scale = 1e3;
  else if (rest == "m" || rest == "M")
    scale = 1e6;
  else if (rest == "b" || rest == "B" || rest == "G")
    scale = 1e9;
  else if (rest == "t" || rest == "T")
    scale = 1e12;
  else if (!rest.empty())
    throw make_error(what, ": unknown suffix '", rest, "' in '", text, "' (use K, M, B or T, or 1e9 style)");
  v *= scale;
  if (!std::isfinite(v) || v <= 0) throw make_error(what, ": expected a positive number, got '", text, "'");
  return v;
}

}  // namespace strata::plan
