// Export to Hugging Face `transformers` (docs/checkpoints.md, "Export to Hugging Face").
//
// strata's parameters are stored [out, in] (y = x W^T + b, torch.nn.Linear's layout) under
// the global names of model::make_parameter_table. Two HF architectures cover the model
// family:
//   GPT2LMHeadModel   LayerNorm, GELU (tanh approximation: "gelu_new"), learned positions.
//                     HF's Conv1D stores weights [in, out], so every matrix is transposed,
//                     and c_attn fuses q, k, v: concat(Wq, Wk, Wv) along the output rows,
//                     then transposed. A model without biases gets zero biases (exact).
//   LlamaForCausalLM  RMSNorm, SwiGLU, RoPE with the rotate-half pairing (the same as
//                     strata's rope kernel, so q/k rows need no permutation), GQA. Biases
//                     map to attention_bias / mlp_bias.
// Anything else (LayerNorm with SwiGLU, RoPE in a GPT-2-style model, bidirectional
// attention, ...) is refused with the features that have no HF equivalent.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/ckpt/safetensors.hpp"
#include "strata/config/config.hpp"

namespace strata::ckpt {

enum class HfArch { gpt2, llama };
const char* to_string(HfArch a);

// One HF tensor and how it is made from strata's tensors.
struct HfTensor {
  std::string name;                  // HF name, e.g. "transformer.h.0.attn.c_attn.weight"
  Shape shape;                       // HF shape
  std::vector<std::string> sources;  // strata names, concatenated along dimension 0; none: zeros
  bool transpose = false;            // 2-D: the concatenation [out, in] written as [in, out]
};

struct HfExportPlan {
  HfArch arch = HfArch::gpt2;
  std::vector<HfTensor> tensors;  // in the order they are written
  nlohmann::ordered_json config;  // config.json (without the tokenizer's token ids)
};

// The architecture for `model`; throws strata::Error listing the features that have no HF
// equivalent in the nearest architecture.
HfArch choose_hf_arch(const config::ModelConfig& model);

// The mapping for `model`, with `dtype` recorded as config.json's torch_dtype. Shapes come
// from model::make_parameter_table (global shapes, unpadded vocabulary).
HfExportPlan plan_hf_export(const config::ModelConfig& model, StDtype dtype);

// Reads one strata tensor (global shape, row-major fp32) by its global name.
using TensorReader = std::function<std::vector<float>(const std::string& name)>;

// The values of one HF tensor from its sources (concatenation, transposition, zeros).
std::vector<float> build_hf_tensor(const HfTensor& t, const TensorReader& read);

struct HfExportOptions {
  std::string out_dir;
  StDtype dtype = StDtype::bf16;
  std::uint64_t max_shard_bytes = 5'000'000'000;  // Hugging Face's default "5GB"
  // Tokenizer spec (data::load_tokenizer); "": the run's data.tokenizer, "none": no tokenizer.
  std::string tokenizer;
};

struct HfExportResult {
  HfArch arch = HfArch::gpt2;
  StWriteResult weights;
  std::string tokenizer_file;  // "tokenizer.json" / "tokenizer.model", or "" when none written
  std::string tokenizer_note;  // why none was written, or where it came from
};

// Exports checkpoint `path` (a file, or a directory with `latest`): model.safetensors (or
// shards), config.json, generation_config.json and the tokenizer when known. Rank-local.
HfExportResult export_hf(const std::string& path, const HfExportOptions& options);

}  // namespace strata::ckpt
