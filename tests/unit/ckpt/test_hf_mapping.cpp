// The strata -> Hugging Face mapping: names, shapes, the GPT-2 Conv1D transposition and q|k|v
// fusion, LLaMA's one-to-one copy, config.json, and the refusal of models HF cannot express.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "strata/ckpt/export_hf.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/model/parameters.hpp"

using namespace strata;
using namespace strata::ckpt;
using config::ModelConfig;

namespace {

ModelConfig model_file(const std::string& name) {
  return config::load_model_config(std::string(STRATA_SOURCE_DIR) + "/configs/models/" + name + ".yaml");
}

// A fake checkpoint: element i of tensor `name` is tag(name) * 1000 + i, so a value says
// which tensor and which element it came from.
struct FakeCheckpoint {
  std::map<std::string, int> tags;
  std::map<std::string, Shape> shapes;
  std::set<std::string> read;
  explicit FakeCheckpoint(const ModelConfig& m) {
    const model::ParameterTable table = model::make_parameter_table(m);
    for (const auto& p : table.entries()) {
      shapes[p.name] = p.global_shape;
      tags[p.name] = int(tags.size()) + 1;
    }
  }
  float value(const std::string& name, std::int64_t i) const {
    return float(tags.at(name)) * 1000.0f + float(i);
  }
  TensorReader reader() {
    return [this](const std::string& name) {
      read.insert(name);
      std::vector<float> v(std::size_t(shape_numel(shapes.at(name))));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = value(name, std::int64_t(i));
      return v;
    };
  }
};

const HfTensor& find(const HfExportPlan& plan, const std::string& name) {
  for (const auto& t : plan.tensors)
    if (t.name == name) return t;
  throw make_error("no HF tensor ", name);
}

std::string error_of(const ModelConfig& m) {
  try {
    plan_hf_export(m, StDtype::bf16);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(HfMapping, Gpt2NamesShapesAndConfig) {
  const ModelConfig m = model_file("tiny_gpt");  // C 32, 4 heads, 2 layers, tied, biases
  const HfExportPlan plan = plan_hf_export(m, StDtype::bf16);
  EXPECT_EQ(plan.arch, HfArch::gpt2);
  const std::int64_t C = 32, F = 128, V = 64, P = 32;
  std::map<std::string, Shape> want{{"transformer.wte.weight", {V, C}},
                                    {"transformer.wpe.weight", {P, C}},
                                    {"transformer.ln_f.weight", {C}},
                                    {"transformer.ln_f.bias", {C}}};
  for (int l = 0; l < 2; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    want[h + "ln_1.weight"] = want[h + "ln_1.bias"] = want[h + "ln_2.weight"] = want[h + "ln_2.bias"] = {C};
    want[h + "attn.c_attn.weight"] = {C, 3 * C};
    want[h + "attn.c_attn.bias"] = {3 * C};
    want[h + "attn.c_proj.weight"] = {C, C};
    want[h + "attn.c_proj.bias"] = {C};
    want[h + "mlp.c_fc.weight"] = {C, F};
    want[h + "mlp.c_fc.bias"] = {F};
    want[h + "mlp.c_proj.weight"] = {F, C};
    want[h + "mlp.c_proj.bias"] = {C};
  }
  std::map<std::string, Shape> got;
  for (const auto& t : plan.tensors) got[t.name] = t.shape;
  EXPECT_EQ(got, want);  // tied: no lm_head.weight (transformers ties it to wte)
  const auto& c = plan.config;
  EXPECT_EQ(c["model_type"], "gpt2");
  EXPECT_EQ(c["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(c["n_embd"], C);
  EXPECT_EQ(c["n_layer"], 2);
  EXPECT_EQ(c["n_head"], 4);
  EXPECT_EQ(c["n_inner"], F);
  EXPECT_EQ(c["n_positions"], P);
  EXPECT_EQ(c["vocab_size"], V);
  EXPECT_EQ(c["activation_function"], "gelu_new");  // tanh-approximated GELU, as strata's kernel
  EXPECT_EQ(c["layer_norm_epsilon"], 1e-5);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["torch_dtype"], "bfloat16");
}

TEST(HfMapping, Gpt2FusesQkvAndTransposesForConv1D) {
  const ModelConfig m = model_file("tiny_gpt");
  const std::int64_t C = 32, F = 128;
  FakeCheckpoint ck(m);
  const HfExportPlan plan = plan_hf_export(m, StDtype::f32);
  const auto read = ck.reader();
  // c_attn.weight[i][j] = concat(Wq, Wk, Wv)[j][i]: HF's x @ W gives q | k | v.
  const auto w = build_hf_tensor(find(plan, "transformer.h.1.attn.c_attn.weight"), read);
  const char* parts[] = {"layers.1.attn.wq.weight", "layers.1.attn.wk.weight", "layers.1.attn.wv.weight"};
  for (std::int64_t i = 0; i < C; ++i)
    for (std::int64_t j = 0; j < 3 * C; ++j)
      ASSERT_EQ(w[std::size_t(i * 3 * C + j)], ck.value(parts[j / C], (j % C) * C + i)) << i << "," << j;
  const auto b = build_hf_tensor(find(plan, "transformer.h.1.attn.c_attn.bias"), read);
  for (std::int64_t j = 0; j < 3 * C; ++j)
    EXPECT_EQ(
        b[std::size_t(j)],
        ck.value(std::string(parts[j / C]).replace(std::string(parts[j / C]).size() - 6, 6, "bias"), j % C));
  // mlp.c_fc.weight [C, F] = fc.weight [F, C] transposed; c_proj [F, C] = proj [C, F] transposed.
  const auto fc = build_hf_tensor(find(plan, "transformer.h.0.mlp.c_fc.weight"), read);
  const auto pr = build_hf_tensor(find(plan, "transformer.h.0.mlp.c_proj.weight"), read);
  for (std::int64_t i = 0; i < C; ++i)
    for (std::int64_t f = 0; f < F; ++f) {
      ASSERT_EQ(fc[std::size_t(i * F + f)], ck.value("layers.0.mlp.fc.weight", f * C + i));
      ASSERT_EQ(pr[std::size_t(f * C + i)], ck.value("layers.0.mlp.proj.weight", i * F + f));
    }
  const auto ao = build_hf_tensor(find(plan, "transformer.h.0.attn.c_proj.weight"), read);
  EXPECT_EQ(ao[std::size_t(3 * C + 5)], ck.value("layers.0.attn.wo.weight", 5 * C + 3));
  // Copies stay as they are.
  const auto wte = build_hf_tensor(find(plan, "transformer.wte.weight"), read);
  EXPECT_EQ(wte[77], ck.value("embed.wte", 77));
  // Every strata parameter is exported.
  for (const auto& t : plan.tensors) build_hf_tensor(t, read);
  std::set<std::string> all;
  for (const auto& [name, tag] : ck.tags) all.insert(name);
  EXPECT_EQ(ck.read, all);
}

TEST(HfMapping, Gpt2WithoutBiasesGetsZeroBiasesAndUntiedHead) {
  ModelConfig m = model_file("tiny_gpt");
  m.bias = false;
  m.tied_embeddings = false;
  FakeCheckpoint ck(m);
  const HfExportPlan plan = plan_hf_export(m, StDtype::f32);
  EXPECT_EQ(plan.config["tie_word_embeddings"], false);
  const auto head = build_hf_tensor(find(plan, "lm_head.weight"), ck.reader());
  EXPECT_EQ(head[5], ck.value("lm_head.weight", 5));
  for (const char* name : {"transformer.h.0.attn.c_attn.bias", "transformer.h.1.ln_2.bias",
                           "transformer.ln_f.bias", "transformer.h.0.mlp.c_fc.bias"}) {
    const HfTensor& t = find(plan, name);
    EXPECT_TRUE(t.sources.empty()) << name;
    for (float v : build_hf_tensor(t, ck.reader())) ASSERT_EQ(v, 0.0f) << name;
  }
  EXPECT_EQ(find(plan, "transformer.h.0.attn.c_attn.bias").shape, Shape{96});
}

TEST(HfMapping, LlamaCopiesOneToOneWithGqaAndUntiedHead) {
  const ModelConfig m = model_file("tiny_llama");  // C 32, 4 heads, 2 kv heads, F 64, untied, no bias
  const HfExportPlan plan = plan_hf_export(m, StDtype::f32);
  EXPECT_EQ(plan.arch, HfArch::llama);
  const std::int64_t C = 32, F = 64, V = 64, KV = 2 * 8;
  std::map<std::string, Shape> want{
      {"model.embed_tokens.weight", {V, C}}, {"model.norm.weight", {C}}, {"lm_head.weight", {V, C}}};
  for (int l = 0; l < 2; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    want[h + "input_layernorm.weight"] = want[h + "post_attention_layernorm.weight"] = {C};
    want[h + "self_attn.q_proj.weight"] = want[h + "self_attn.o_proj.weight"] = {C, C};
    want[h + "self_attn.k_proj.weight"] = want[h + "self_attn.v_proj.weight"] = {KV, C};
    want[h + "mlp.gate_proj.weight"] = want[h + "mlp.up_proj.weight"] = {F, C};
    want[h + "mlp.down_proj.weight"] = {C, F};
  }
  std::map<std::string, Shape> got;
  for (const auto& t : plan.tensors) {
    got[t.name] = t.shape;
    EXPECT_FALSE(t.transpose) << t.name;  // nn.Linear's [out, in], as strata's
    EXPECT_EQ(t.sources.size(), 1u) << t.name;
  }
  EXPECT_EQ(got, want);
  FakeCheckpoint ck(m);
  const auto k = build_hf_tensor(find(plan, "model.layers.1.self_attn.k_proj.weight"), ck.reader());
  for (std::size_t i = 0; i < k.size(); ++i)
    ASSERT_EQ(k[i], ck.value("layers.1.attn.wk.weight", std::int64_t(i)));
  const auto& c = plan.config;
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["hidden_size"], C);
  EXPECT_EQ(c["intermediate_size"], F);
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["head_dim"], 8);
  EXPECT_EQ(c["rope_theta"], 10000.0);
  EXPECT_EQ(c["rms_norm_eps"], 1e-5);
  EXPECT_EQ(c["max_position_embeddings"], 32);
  EXPECT_EQ(c["hidden_act"], "silu");
  EXPECT_EQ(c["attention_bias"], false);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["torch_dtype"], "float32");
}

TEST(HfMapping, LlamaBiasesMapToAttentionAndMlpBias) {
  ModelConfig m = model_file("tiny_llama");
  m.bias = true;
  m.tied_embeddings = true;
  const HfExportPlan plan = plan_hf_export(m, StDtype::bf16);
  EXPECT_EQ(plan.config["attention_bias"], true);
  EXPECT_EQ(plan.config["mlp_bias"], true);
  EXPECT_EQ(find(plan, "model.layers.0.self_attn.k_proj.bias").sources,
            std::vector<std::string>{"layers.0.attn.wk.bias"});
  EXPECT_EQ(find(plan, "model.layers.1.mlp.down_proj.bias").shape, Shape{32});
  for (const auto& t : plan.tensors) EXPECT_NE(t.name, "lm_head.weight");  // tied
}

TEST(HfMapping, RefusesModelsWithoutHfEquivalentNamingTheFeature) {
  ModelConfig m = model_file("tiny_gpt");
  m.mlp = config::MlpKind::swiglu;  // LayerNorm + SwiGLU: neither GPT-2 nor LLaMA
  std::string e = error_of(m);
  EXPECT_NE(e.find("mlp=swiglu (HF needs gelu)"), std::string::npos) << e;
  EXPECT_NE(e.find("norm=layernorm (HF needs rmsnorm)"), std::string::npos) << e;

  m = model_file("tiny_gpt");
  m.positions = config::PositionKind::rope;
  e = error_of(m);
  EXPECT_NE(e.find("GPT-2 (GPT2LMHeadModel), differs in positions=rope (HF needs learned)"),
            std::string::npos)
      << e;

  m = model_file("tiny_gpt");
  m.num_kv_heads = 2;
  e = error_of(m);
  EXPECT_NE(e.find("num_kv_heads (grouped-query attention)=2 (HF needs 4)"), std::string::npos) << e;

  m = model_file("tiny_llama");
  m.attention = config::AttentionKind::bidirectional;
  e = error_of(m);
  EXPECT_NE(e.find("LLaMA (LlamaForCausalLM), differs in attention=bidirectional (HF needs causal)"),
            std::string::npos)
      << e;

  m = model_file("tiny_llama");
  m.positions = config::PositionKind::learned;
  EXPECT_NE(error_of(m).find("positions=learned (HF needs rope)"), std::string::npos);
}

TEST(HfMapping, SourcesOfTheWrongSizeAreAnError) {
  const ModelConfig m = model_file("tiny_llama");
  const HfExportPlan plan = plan_hf_export(m, StDtype::f32);
  const TensorReader short_read = [](const std::string&) { return std::vector<float>(3); };
  EXPECT_THROW(build_hf_tensor(find(plan, "model.norm.weight"), short_read), Error);
}
