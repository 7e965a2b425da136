// The strata -> Hugging Face name and layout mapping (export_hf.hpp describes it).
#include "strata/ckpt/export_hf.hpp"

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/model/parameters.hpp"

namespace strata::ckpt {

using config::ModelConfig;

const char* to_string(HfArch a) { return a == HfArch::llama ? "llama" : "gpt2"; }

namespace {

// What each HF architecture requires of the model, as (feature, required value, ours).
struct Feature {
  const char* what;
  bool ok;
  std::string ours, needed;
};

std::vector<Feature> features(const ModelConfig& m, HfArch arch) {
  using namespace config;
  const bool gpt2 = arch == HfArch::gpt2;
  std::vector<Feature> f;
  auto req = [&](const char* what, const std::string& ours, const std::string& needed) {
    f.push_back({what, ours == needed, ours, needed});
  };
  req("norm", to_string(m.norm), gpt2 ? "layernorm" : "rmsnorm");
  req("mlp", to_string(m.mlp), gpt2 ? "gelu" : "swiglu");
  req("positions", to_string(m.positions), gpt2 ? "learned" : "rope");
  req("attention", to_string(m.attention), "causal");
  if (gpt2)
    req("num_kv_heads (grouped-query attention)", std::to_string(m.kv_heads()), std::to_string(m.num_heads));
  return f;
}

std::string mismatch_text(const std::vector<Feature>& fs_) {
  std::string s;
  for (const Feature& f : fs_)
    if (!f.ok)
      s += std::string(s.empty() ? "" : ", ") + f.what + "=" + f.ours + " (HF needs " + f.needed + ")";
  return s;
}

std::size_t mismatches(const std::vector<Feature>& fs_) {
  std::size_t n = 0;
  for (const Feature& f : fs_) n += f.ok ? 0 : 1;
  return n;
}

std::string layer(int l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }

}  // namespace

HfArch choose_hf_arch(const ModelConfig& m) {
  const auto g = features(m, HfArch::gpt2), l = features(m, HfArch::llama);
  if (mismatches(g) == 0) return HfArch::gpt2;
  if (mismatches(l) == 0) return HfArch::llama;
  const bool nearer_gpt2 = mismatches(g) <= mismatches(l);
  throw make_error("model '", m.name, "' has no Hugging Face equivalent: the nearest architecture, ",
                   nearer_gpt2 ? "GPT-2 (GPT2LMHeadModel)" : "LLaMA (LlamaForCausalLM)", ", differs in ",
                   mismatch_text(nearer_gpt2 ? g : l), "; ", nearer_gpt2 ? "LLaMA" : "GPT-2", " differs in ",
                   mismatch_text(nearer_gpt2 ? l : g));
}

HfExportPlan plan_hf_export(const ModelConfig& m, StDtype dtype) {
  HfExportPlan plan;
  plan.arch = choose_hf_arch(m);
  const model::ParameterTable table = model::make_parameter_table(m);
  auto shape_of = [&](const std::string& name) { return table.get(name).global_shape; };
  auto has = [&](const std::string& name) { return table.find(name) != nullptr; };
  const std::int64_t C = m.d_model, F = m.ffn(), HS = m.head_size();
  const std::int64_t Q = std::int64_t(m.num_heads) * HS, KV = std::int64_t(m.kv_heads()) * HS;
  auto add = [&](std::string name, Shape shape, std::vector<std::string> sources, bool transpose = false) {
    plan.tensors.push_back({std::move(name), std::move(shape), std::move(sources), transpose});
  };
  // A tensor copied as it is.
  auto copy = [&](std::string name, const std::string& src) { add(std::move(name), shape_of(src), {src}); };
  // A bias that strata's model may not have (bias: false): HF GPT-2 always has one; zeros.
  auto bias_or_zeros = [&](std::string name, const std::string& src, std::int64_t n) {
    if (has(src))
      copy(std::move(name), src);
    else
      add(std::move(name), {n}, {});
  };
  const std::string torch_dtype = dtype == StDtype::bf16 ? "bfloat16" : "float32";

  if (plan.arch == HfArch::gpt2) {
    copy("transformer.wte.weight", "embed.wte");
    copy("transformer.wpe.weight", "embed.wpe");
    for (int l = 0; l < m.num_layers; ++l) {
      const std::string h = "transformer.h." + std::to_string(l) + ".";
      copy(h + "ln_1.weight", layer(l, "attn_norm.weight"));
      bias_or_zeros(h + "ln_1.bias", layer(l, "attn_norm.bias"), C);
      // Conv1D: y = x W + b with W [in, out]; c_attn's output is q | k | v.
      add(h + "attn.c_attn.weight", {C, Q + 2 * KV},
          {layer(l, "attn.wq.weight"), layer(l, "attn.wk.weight"), layer(l, "attn.wv.weight")}, true);
      if (m.bias)
        add(h + "attn.c_attn.bias", {Q + 2 * KV},
            {layer(l, "attn.wq.bias"), layer(l, "attn.wk.bias"), layer(l, "attn.wv.bias")});
      else
        add(h + "attn.c_attn.bias", {Q + 2 * KV}, {});
      add(h + "attn.c_proj.weight", {Q, C}, {layer(l, "attn.wo.weight")}, true);
      bias_or_zeros(h + "attn.c_proj.bias", layer(l, "attn.wo.bias"), C);
      copy(h + "ln_2.weight", layer(l, "mlp_norm.weight"));
      bias_or_zeros(h + "ln_2.bias", layer(l, "mlp_norm.bias"), C);
      add(h + "mlp.c_fc.weight", {C, F}, {layer(l, "mlp.fc.weight")}, true);
      bias_or_zeros(h + "mlp.c_fc.bias", layer(l, "mlp.fc.bias"), F);
      add(h + "mlp.c_proj.weight", {F, C}, {layer(l, "mlp.proj.weight")}, true);
      bias_or_zeros(h + "mlp.c_proj.bias", layer(l, "mlp.proj.bias"), C);
    }
    copy("transformer.ln_f.weight", "final_norm.weight");
    bias_or_zeros("transformer.ln_f.bias", "final_norm.bias", C);
    if (!m.tied_embeddings) copy("lm_head.weight", "lm_head.weight");
    plan.config = {{"architectures", {"GPT2LMHeadModel"}},
                   {"model_type", "gpt2"},
                   {"vocab_size", m.vocab_size},
                   {"n_positions", m.max_seq_len},
                   {"n_embd", m.d_model},
                   {"n_layer", m.num_layers},
                   {"n_head", m.num_heads},
                   {"n_inner", F},
                   {"activation_function", "gelu_new"},  // strata's GELU is the tanh approximation
                   {"layer_norm_epsilon", m.norm_eps},
                   {"initializer_range", m.init_std},
                   {"resid_pdrop", 0.0},
                   {"embd_pdrop", 0.0},
                   {"attn_pdrop", 0.0},
                   {"scale_attn_weights", true},
                   {"scale_attn_by_inverse_layer_idx", false},
                   {"reorder_and_upcast_attn", false},
                   {"tie_word_embeddings", m.tied_embeddings},
                   {"use_cache", true},
                   {"torch_dtype", torch_dtype}};
    return plan;
  }

  // LLaMA: the same [out, in] layout as strata, no transposition.
  copy("model.embed_tokens.weight", "embed.wte");
  for (int l = 0; l < m.num_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    copy(h + "input_layernorm.weight", layer(l, "attn_norm.weight"));
    for (const char* p : {"q", "k", "v", "o"}) {
      const std::string src = layer(l, (std::string("attn.w") + p).c_str());
      copy(h + "self_attn." + p + "_proj.weight", src + ".weight");
      if (m.bias) copy(h + "self_attn." + p + "_proj.bias", src + ".bias");
    }
    copy(h + "post_attention_layernorm.weight", layer(l, "mlp_norm.weight"));
    for (const auto& [hf, ours] : {std::pair{"gate", "gate"}, {"up", "up"}, {"down", "down"}}) {
      copy(h + "mlp." + hf + "_proj.weight", layer(l, (std::string("mlp.") + ours + ".weight").c_str()));
      if (m.bias)
        copy(h + "mlp." + hf + "_proj.bias", layer(l, (std::string("mlp.") + ours + ".bias").c_str()));
    }
  }
  copy("model.norm.weight", "final_norm.weight");
  if (!m.tied_embeddings) copy("lm_head.weight", "lm_head.weight");
  plan.config = {{"architectures", {"LlamaForCausalLM"}},
                 {"model_type", "llama"},
                 {"vocab_size", m.vocab_size},
                 {"hidden_size", m.d_model},
                 {"intermediate_size", F},
                 {"num_hidden_layers", m.num_layers},
                 {"num_attention_heads", m.num_heads},
                 {"num_key_value_heads", m.kv_heads()},
                 {"head_dim", HS},
                 {"hidden_act", "silu"},
                 {"max_position_embeddings", m.max_seq_len},
                 {"rms_norm_eps", m.norm_eps},
                 {"rope_theta", m.rope_theta},
                 {"rope_scaling", nullptr},
                 {"attention_bias", m.bias},
                 {"mlp_bias", m.bias},
                 {"attention_dropout", 0.0},
                 {"initializer_range", m.init_std},
                 {"pretraining_tp", 1},
                 {"tie_word_embeddings", m.tied_embeddings},
                 {"use_cache", true},
                 {"torch_dtype", torch_dtype}};
  return plan;
}

std::vector<float> build_hf_tensor(const HfTensor& t, const TensorReader& read) {
  const std::size_t n = std::size_t(shape_numel(t.shape));
  if (t.sources.empty()) return std::vector<float>(n, 0.0f);
  // Concatenation along dimension 0 of row-major tensors is appending their values.
  std::vector<float> cat;
  cat.reserve(n);
  for (const std::string& src : t.sources) {
    const std::vector<float> v = read(src);
    cat.insert(cat.end(), v.begin(), v.end());
  }
  if (cat.size() != n)
    throw make_error("export: ", t.name, " ", shape_string(t.shape), " needs ", n,
                     " values, its sources give ", cat.size());
  if (!t.transpose) return cat;
  STRATA_CHECK(t.shape.size() == 2, "export: ", t.name, ": only 2-D tensors are transposed");
  // cat is [out, in] = [shape[1], shape[0]]; the result is [in, out].
  const std::size_t rows_out = std::size_t(t.shape[0]), cols_out = std::size_t(t.shape[1]);
  std::vector<float> tr(n);
  for (std::size_t o = 0; o < cols_out; ++o)
    for (std::size_t i = 0; i < rows_out; ++i) tr[i * cols_out + o] = cat[o * rows_out + i];
  return tr;
}

}  // namespace strata::ckpt
