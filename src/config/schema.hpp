// The config schema: every struct lists its fields once, in a visitor. The same list drives
// YAML parsing (load.cpp), unknown-key detection and suggestions, range checks in
// validate() (validate.cpp) and to_yaml() (to_yaml.cpp). A new field is added here and
// nowhere else.
//
//   template <class V> void visit_fields(ModelConfig& c, V&& v) {
//     v("num_layers", c.num_layers, positive);   // YAML key, member, range rule
//   }
//
// Private to src/config.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::config::schema {

// ---- range rules ------------------------------------------------------------------------
enum class Rule {
  any,           // no constraint beyond the type
  positive,      // > 0
  non_negative,  // >= 0
  unit,          // in [0, 1)  (probabilities, Adam betas)
  non_empty,     // strings: not ""
};
inline constexpr Rule any = Rule::any;
inline constexpr Rule positive = Rule::positive;
inline constexpr Rule non_negative = Rule::non_negative;
inline constexpr Rule unit = Rule::unit;
inline constexpr Rule non_empty = Rule::non_empty;

// ---- enums: lowercase YAML names ----------------------------------------------------------
template <class E>
struct EnumNames;  // static constexpr std::array<std::pair<std::string_view, E>, N> values

#define STRATA_ENUM_NAMES(E, ...)                                             \
  template <>                                                                 \
  struct EnumNames<E> {                                                       \
    static constexpr std::pair<std::string_view, E> values[] = {__VA_ARGS__}; \
  };
STRATA_ENUM_NAMES(NormKind, {"layernorm", NormKind::layernorm}, {"rmsnorm", NormKind::rmsnorm})
STRATA_ENUM_NAMES(MlpKind, {"gelu", MlpKind::gelu}, {"swiglu", MlpKind::swiglu})
STRATA_ENUM_NAMES(PositionKind, {"learned", PositionKind::learned}, {"rope", PositionKind::rope})
STRATA_ENUM_NAMES(AttentionKind, {"causal", AttentionKind::causal},
                  {"bidirectional", AttentionKind::bidirectional})
STRATA_ENUM_NAMES(RecomputeKind, {"none", RecomputeKind::none}, {"full", RecomputeKind::full})
STRATA_ENUM_NAMES(ScheduleKind, {"cosine", ScheduleKind::cosine}, {"constant", ScheduleKind::constant},
                  {"linear", ScheduleKind::linear})
STRATA_ENUM_NAMES(PipelineSchedule, {"gpipe", PipelineSchedule::gpipe},
                  {"1f1b", PipelineSchedule::one_f_one_b},
                  {"interleaved_1f1b", PipelineSchedule::interleaved_1f1b},
                  {"zb_h1", PipelineSchedule::zb_h1})
STRATA_ENUM_NAMES(DataSource, {"synthetic", DataSource::synthetic}, {"text", DataSource::text},
                  {"hdf5", DataSource::hdf5})
STRATA_ENUM_NAMES(ObjectiveKind, {"causal_lm", ObjectiveKind::causal_lm},
                  {"masked_lm", ObjectiveKind::masked_lm})
STRATA_ENUM_NAMES(DeviceKind, {"cpu", DeviceKind::cpu}, {"cuda", DeviceKind::cuda})
STRATA_ENUM_NAMES(CurriculumOrder, {"none", CurriculumOrder::none}, {"length", CurriculumOrder::length},
                  {"quality", CurriculumOrder::quality}, {"scores", CurriculumOrder::scores})
STRATA_ENUM_NAMES(CurriculumPacing, {"linear", CurriculumPacing::linear}, {"root", CurriculumPacing::root},
                  {"step", CurriculumPacing::step})
STRATA_ENUM_NAMES(ReduceDType, {"fp32", ReduceDType::fp32}, {"bf16", ReduceDType::bf16})
STRATA_ENUM_NAMES(CpMode, {"ring", CpMode::ring}, {"ulysses", CpMode::ulysses})
#undef STRATA_ENUM_NAMES

template <class E>
concept ConfigEnum = requires {
  EnumNames<E>::values;
};

// "layernorm|rmsnorm"
// std::vector<int> and std::vector<double>: lists of numbers, each checked against the rule.
template <class T>
struct IsNumberList : std::false_type {};
template <class X>
struct IsNumberList<std::vector<X>>
    : std::bool_constant<std::is_arithmetic_v<X> && !std::is_same_v<X, bool>> {};
template <class T>
inline constexpr bool is_number_list = IsNumberList<T>::value;

template <ConfigEnum E>
std::string enum_choices() {
  std::string s;
  for (const auto& [name, value] : EnumNames<E>::values) {
    if (!s.empty()) s += '|';
    s += name;
  }
  return s;
}

template <ConfigEnum E>
const char* enum_name(E v) {
  for (const auto& [name, value] : EnumNames<E>::values)
    if (value == v) return name.data();  // string literals: NUL-terminated
  return "?";
}

// ---- the field lists ------------------------------------------------------------------------
template <class V>
void visit_fields(ModelConfig& c, V&& v) {
  v("name", c.name, non_empty);
  v("num_layers", c.num_layers, positive);
  v("d_model", c.d_model, positive);
  v("num_heads", c.num_heads, positive);
  v("num_kv_heads", c.num_kv_heads, non_negative);
  v("ffn_hidden", c.ffn_hidden, non_negative);
  v("vocab_size", c.vocab_size, positive);
  v("max_seq_len", c.max_seq_len, positive);
  v("norm", c.norm, any);
  v("mlp", c.mlp, any);
  v("positions", c.positions, any);
  v("attention", c.attention, any);
  v("tied_embeddings", c.tied_embeddings, any);
  v("bias", c.bias, any);
  v("norm_eps", c.norm_eps, positive);
  v("rope_theta", c.rope_theta, positive);
  v("init_std", c.init_std, positive);
  v("recompute", c.recompute, any);
}

template <class V>
void visit_fields(ParallelConfig& c, V&& v) {
  v("tp", c.tp, positive);
  v("pp", c.pp, positive);
  v("dp", c.dp, non_negative);
  v("cp", c.cp, positive);
  v("cp_mode", c.cp_mode, any);
  v("micro_batch_size", c.micro_batch_size, positive);
  v("global_batch_size", c.global_batch_size, non_negative);
  v("num_microbatches", c.num_microbatches, non_negative);
  v("schedule", c.schedule, any);
  v("virtual_stages", c.virtual_stages, positive);
  v("layers_per_stage", c.layers_per_stage, positive);
  v("sequence_parallel", c.sequence_parallel, any);
  v("zero_stage", c.zero_stage, non_negative);
  v("bucket_mb", c.bucket_mb, positive);
  v("grad_reduce_dtype", c.grad_reduce_dtype, any);
}

template <class V>
void visit_fields(OptimConfig& c, V&& v) {
  v("lr", c.lr, non_negative);
  v("min_lr", c.min_lr, non_negative);
  v("warmup_steps", c.warmup_steps, non_negative);
  v("decay_steps", c.decay_steps, non_negative);
  v("schedule", c.schedule, any);
  v("beta1", c.beta1, unit);
  v("beta2", c.beta2, unit);
  v("eps", c.eps, positive);
  v("weight_decay", c.weight_decay, non_negative);
  v("decay_embeddings", c.decay_embeddings, any);
  v("grad_clip", c.grad_clip, non_negative);
}

template <class V>
void visit_fields(TrainConfig& c, V&& v) {
  v("steps", c.steps, positive);
  v("seed", c.seed, any);
  v("seq_len", c.seq_len, positive);
  v("out_dir", c.out_dir, non_empty);
  v("log_interval", c.log_interval, positive);
  v("rank_logs", c.rank_logs, any);
  v("resume", c.resume, non_empty);
  v("objective", c.objective, any);
  v("mlm_probability", c.mlm_probability, unit);
  v("mlm_mask_fraction", c.mlm_mask_fraction, non_negative);
  v("mlm_random_fraction", c.mlm_random_fraction, non_negative);
  v("seq_len_warmup", c.seq_len_warmup, any);
  v("seq_len_warmup_start", c.seq_len_warmup_start, non_negative);
}

template <class V>
void visit_fields(EvalConfig& c, V&& v) {
  v("interval", c.interval, non_negative);
  v("windows", c.windows, non_negative);
}

template <class V>
void visit_fields(CheckpointConfig& c, V&& v) {
  v("dir", c.dir, any);
  v("interval", c.interval, non_negative);
  v("keep", c.keep, non_negative);
  v("save_at_end", c.save_at_end, any);
  v("async", c.async, any);
}

template <class V>
void visit_fields(GuardConfig& c, V&& v) {
  v("loss_spike_factor", c.loss_spike_factor, non_negative);
  v("loss_window", c.loss_window, positive);
  v("loss_warmup", c.loss_warmup, non_negative);
  v("rollback_after", c.rollback_after, non_negative);
  v("max_rollbacks", c.max_rollbacks, non_negative);
}

template <class V>
void visit_fields(DataConfig& c, V&& v) {
  v("source", c.source, any);
  v("paths", c.paths, non_empty);        // each path non-empty
  v("datasets", c.datasets, non_empty);  // each path non-empty, each weight > 0
  v("tokenizer", c.tokenizer, any);
  v("valid_fraction", c.valid_fraction, unit);
  v("max_epochs", c.max_epochs, non_negative);
  v("prefetch", c.prefetch, positive);
  v("schedule", c.schedule, non_negative);  // tokens >= 0, weights >= 0
  v("curriculum", c.curriculum, any);
  v("curriculum_scores", c.curriculum_scores, non_empty);
  v("curriculum_pacing", c.curriculum_pacing, any);
  v("curriculum_start", c.curriculum_start, positive);
  v("curriculum_tokens", c.curriculum_tokens, any);
  v("curriculum_stages", c.curriculum_stages, positive);
  v("curriculum_reverse", c.curriculum_reverse, any);
}

template <class V>
void visit_fields(HardwareConfig& c, V&& v) {
  v("device", c.device, any);
  v("peak_tflops", c.peak_tflops, non_negative);
  v("cluster", c.cluster, any);
  v("threads", c.threads, non_negative);
}

// The top-level sections of a job file, in the order to_yaml writes them.
template <class V>
void visit_sections(JobConfig& j, V&& v) {
  v("model", j.model);
  v("parallel", j.parallel);
  v("optim", j.optim);
  v("train", j.train);
  v("ckpt", j.ckpt);
  v("guard", j.guard);
  v("eval", j.eval);
  v("data", j.data);
  v("hardware", j.hardware);
}

// ---- shared by parsing and validate(): what a field expects, and whether a value fits ---------

template <class T>
std::string type_noun() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_same_v<T, int>)
    return "an integer";
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return "a non-negative integer";
  else if constexpr (std::is_same_v<T, double>)
    return "a number";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return "a string or a list of strings";
  else if constexpr (std::is_same_v<T, std::vector<int>>)
    return "a list of integers";
  else if constexpr (std::is_same_v<T, std::vector<double>>)
    return "a list of numbers";
  else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>)
    return "a list of {path, weight} mappings";
  else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>)
    return "a list of {tokens, weights} mappings";
  else if constexpr (ConfigEnum<T>)
    return "one of " + enum_choices<T>();
  else
    static_assert(sizeof(T) == 0, "config field of unsupported type");
}

// "an integer > 0", "a number in [0, 1)", "a non-empty string".
template <class T>
std::string expectation(Rule r) {
  std::string noun = type_noun<T>();
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    switch (r) {
      case Rule::positive: return noun + " > 0";
      case Rule::non_negative: return noun + " >= 0";
      case Rule::unit: return noun + " in [0, 1)";
      default: return noun;
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    return r == Rule::non_empty ? "a non-empty string" : noun;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return r == Rule::non_empty ? "a non-empty string or a list of non-empty strings" : noun;
  } else if constexpr (is_number_list<T>) {
    switch (r) {  // "a list of integers > 0", "a list of numbers >= 0"
      case Rule::positive: return noun + " > 0";
      case Rule::non_negative: return noun + " >= 0";
      case Rule::unit: return noun + " in [0, 1)";
      default: return noun;
    }
  } else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>) {
    return r == Rule::non_empty ? "a list of {path: non-empty string, weight: number > 0} mappings" : noun;
  } else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>) {
    return "a list of {tokens: integer >= 0, weights: [numbers >= 0, not all 0]} mappings";
  } else {
    return noun;
  }
}

template <class T>
bool satisfies(const T& v, Rule r) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    switch (r) {
      case Rule::positive: return v > 0;
      case Rule::non_negative: return v >= 0;
      case Rule::unit: return v >= 0 && v < 1;
      default: return true;
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    return r != Rule::non_empty || !v.empty();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (r == Rule::non_empty)
      for (const auto& s : v)
        if (s.empty()) return false;
    return true;
  } else if constexpr (is_number_list<T>) {
    for (const auto x : v)
      if (!satisfies(x, r)) return false;
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>) {
    if (r == Rule::non_empty)
      for (const auto& d : v)
        if (d.path.empty() || !(d.weight > 0) || !std::isfinite(d.weight)) return false;
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>) {
    for (const auto& p : v) {
      double total = 0;
      for (double w : p.weights) {
        if (!(w >= 0) || !std::isfinite(w)) return false;
        total += w;
      }
      if (!(total > 0)) return false;
    }
    return true;
  } else {
    return true;
  }
}

// Shortest text that reads back to the same double ("6e-05", "0.0006", "10000").
inline std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// A value as it would appear in YAML (for messages and to_yaml's scalars).
template <class T>
std::string format_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>)
    return v ? "true" : "false";
  else if constexpr (std::is_same_v<T, double>)
    return format_double(v);
  else if constexpr (std::is_arithmetic_v<T>)
    return std::to_string(v);
  else if constexpr (std::is_same_v<T, std::string>)
    return "'" + v + "'";
  else if constexpr (ConfigEnum<T>)
    return enum_name(v);
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + "'";
    return s + "]";
  } else if constexpr (is_number_list<T>) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_value(v[i]);
    return s + "]";
  } else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i)
      s += (i ? ", " : "") + std::string("{path: '") + v[i].path +
           "', weight: " + format_double(v[i].weight) + "}";
    return s + "]";
  } else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      s += (i ? ", " : "") + std::string("{tokens: ") + std::to_string(v[i].tokens) + ", weights: [";
      for (std::size_t k = 0; k < v[i].weights.size(); ++k)
        s += (k ? ", " : "") + format_double(v[i].weights[k]);
      s += "]}";
    }
    return s + "]";
  }
}

// The candidate closest to `key` (case-insensitive Levenshtein distance at most
// min(3, max(1, |candidate|/2)), or one containing the other), or "" when none is close.
std::string closest(std::string_view key, const std::vector<std::string>& candidates);

// " (did you mean 'num_layers'?)" or "".
inline std::string did_you_mean(std::string_view key, const std::vector<std::string>& candidates) {
  const std::string c = closest(key, candidates);
  return c.empty() ? std::string() : "; did you mean '" + c + "'?";
}

// Field names of one struct, in schema order.
template <class C>
std::vector<std::string> field_names() {
  C c{};
  std::vector<std::string> names;
  visit_fields(c, [&](const char* name, auto&, Rule) { names.emplace_back(name); });
  return names;
}

inline std::vector<std::string> section_names() {
  JobConfig j;
  std::vector<std::string> names;
  visit_sections(j, [&](const char* name, auto&) { names.emplace_back(name); });
  return names;
}

}  // namespace strata::config::schema
