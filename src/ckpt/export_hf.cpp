// Export of a strata checkpoint to Hugging Face transformers: weights, config.json and the
// tokenizer (the mapping itself is in hf_mapping.cpp).
#include <filesystem>
#include <fstream>
#include <map>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/ckpt/export_hf.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/format.hpp"
#include "strata/model/parameters.hpp"

namespace strata::ckpt {

namespace fs = std::filesystem;
using config::ModelConfig;

namespace {

void write_json(const fs::path& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw make_error("export: cannot write '", path.string(), "'");
  out << j.dump(2) << '\n';
  if (!out) throw make_error("export: write failed for '", path.string(), "'");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The tokenizer files; returns the file written ("" for none) and a note.
std::pair<std::string, std::string> export_tokenizer(const std::string& spec, const CheckpointInfo& info,
                                                     const ModelConfig& m, const fs::path& out,
                                                     nlohmann::ordered_json& model_config) {
  if (spec == "none") return {"", "not requested (--tokenizer none)"};
  if (spec.empty())
    return {"", "the run names no tokenizer (data.tokenizer is empty); pass --tokenizer SPEC to add one"};
  const std::unique_ptr<data::Tokenizer> tok = data::load_tokenizer(spec);
  if (!info.tokenizer_hash.empty() && tok->content_hash() != info.tokenizer_hash)
    throw make_error("export: tokenizer '", spec, "' has content hash ", tok->content_hash(),
                     ", the checkpoint was trained with ", info.tokenizer_hash,
                     " (pass the run's tokenizer with --tokenizer, or --tokenizer none)");
  if (tok->vocab_size() > m.vocab_size)
    throw make_error("export: tokenizer '", spec, "' has ", tok->vocab_size(),
                     " tokens, the model's vocabulary only ", m.vocab_size);
  const std::int32_t eos = tok->eos_id();
  if (eos >= 0) {
    model_config["bos_token_id"] = eos;  // GPT-2's convention: <|endoftext|> both begins and ends
    model_config["eos_token_id"] = eos;
  }
  if (ends_with(spec, ".model")) {
    // SentencePiece: transformers' LlamaTokenizer reads the .model file itself.
    fs::copy_file(spec, out / "tokenizer.model", fs::copy_options::overwrite_existing);
    return {"tokenizer.model", "copied from " + spec};
  }
  std::string note;
  if (ends_with(spec, ".json")) {
    fs::copy_file(spec, out / "tokenizer.json", fs::copy_options::overwrite_existing);
    note = "copied from " + spec;
  } else if (const auto* bpe = dynamic_cast<const data::BpeTokenizer*>(tok.get())) {
    if (bpe->options().rank_merges)
      return {"",
              "tokenizer '" + spec + "' is a tiktoken rank file, which has no merge list for tokenizer.json"};
    bpe->save_tokenizer_json((out / "tokenizer.json").string());
    note = "written from " + spec + "'s vocabulary and merges";
  } else if (dynamic_cast<const data::ByteTokenizer*>(tok.get())) {
    // Byte-level: a byte-level BPE with the 256 byte tokens (id = byte) and no merges gives
    // the same ids; EOS (256) is an added special token.
    std::vector<std::string> tokens(256);
    for (int b = 0; b < 256; ++b) tokens[std::size_t(b)] = std::string(1, char(b));
    data::BpeTokenizer bytes("bytes", std::move(tokens), {}, {{"<|endoftext|>", 256}}, {});
    bytes.save_tokenizer_json((out / "tokenizer.json").string());
    note = "byte-level: 256 byte tokens and <|endoftext|> = 256";
  } else {
    return {"", "tokenizer '" + spec + "' has no tokenizer.json form"};
  }
  nlohmann::ordered_json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                               {"model_max_length", m.max_seq_len}};
  // The EOS token's text as the tokenizer.json spells it (decode() of a special id may be
  // empty, e.g. the byte tokenizer's).
  if (eos >= 0) {
    std::ifstream in(out / "tokenizer.json");
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    std::string text;
    if (!j.is_discarded())
      for (const auto& t : j.value("added_tokens", nlohmann::json::array()))
        if (t.value("id", -1) == eos) text = t.value("content", "");
    if (!text.empty()) {
      tc["eos_token"] = text;
      tc["bos_token"] = text;
    }
  }
  write_json(out / "tokenizer_config.json", tc);
  return {"tokenizer.json", note};
}

// The run's tokenizer: data.tokenizer, else (hdf5 data) the name the first dataset records
// when it is a spec strata knows by name ("bytes", "gpt2", "cl100k_base", ...); "" if neither.
std::string run_tokenizer_spec(const config::DataConfig& data) {
  if (!data.tokenizer.empty() || data.source != config::DataSource::hdf5 || data.datasets.empty())
    return data.tokenizer;
  try {
    const std::string name = data::TokenDataset(data.datasets.front().path).info().tokenizer_name;
    data::load_tokenizer(name);
    return name;
  } catch (const Error&) {
    return "";  // the dataset is gone, or its tokenizer is a file known only by its stem
  }
}

}  // namespace

HfExportResult export_hf(const std::string& path, const HfExportOptions& opt) {
  STRATA_CHECK(!opt.out_dir.empty(), "export: no output folder");
  const std::string file = resolve(path);
  const CheckpointInfo info = read_info(file);
  const config::JobConfig job = config::parse_job_config(info.config_yaml, file + " (stored config)");
  const ModelConfig& m = job.model;
  HfExportPlan plan = plan_hf_export(m, opt.dtype);

  // Every source must be in the checkpoint with the shape the model's table gives it.
  std::map<std::string, StoredTensor> stored;
  for (const StoredTensor& t : list_tensors(file))
    if (t.path.rfind("/model/", 0) == 0) stored[t.name] = t;
  const model::ParameterTable table = model::make_parameter_table(m);
  for (const model::ParamInfo& p : table.entries()) {
    const auto it = stored.find(p.name);
    if (it == stored.end()) throw make_error("export: ", file, " has no tensor /model/", p.name);
    if (it->second.shape != p.global_shape)
      throw make_error("export: ", file, ": /model/", p.name, " has shape ", shape_string(it->second.shape),
                       ", the model ", shape_string(p.global_shape));
  }

  fs::create_directories(opt.out_dir);
  const fs::path out(opt.out_dir);
  HfExportResult result;
  result.arch = plan.arch;
  std::tie(result.tokenizer_file, result.tokenizer_note) = export_tokenizer(
      opt.tokenizer.empty() ? run_tokenizer_spec(job.data) : opt.tokenizer, info, m, out, plan.config);

  std::vector<StTensor> tensors;
  std::map<std::string, const HfTensor*> by_name;
  for (const HfTensor& t : plan.tensors) {
    tensors.push_back({t.name, t.shape});
    by_name[t.name] = &t;
  }
  const TensorReader read = [&](const std::string& name) {
    std::vector<float> v = read_tensor(file, stored.at(name).path);
    // The stored checksum guards against a corrupt file being exported silently.
    if (checksum(v.data(), std::int64_t(v.size())) != stored.at(name).checksum)
      throw make_error("export: ", file, ": /model/", name,
                       " does not match its stored checksum (corrupt file?)");
    return v;
  };
  result.weights =
      write_safetensors(opt.out_dir, tensors, opt.dtype, opt.max_shard_bytes,
                        [&](const StTensor& t) { return build_hf_tensor(*by_name.at(t.name), read); });

  plan.config["strata"] = {{"checkpoint", file},
                           {"step", info.step},
                           {"tokens_seen", info.tokens_seen},
                           {"layout", info.layout},
                           {"model", m.name}};
  write_json(out / "config.json", plan.config);
  return result;
}

}  // namespace strata::ckpt
