// `strata ckpt inspect DIR|FILE` and `strata ckpt export-hf CKPT --out DIR` (docs/checkpoints.md).
// No reshard command: any layout loads any checkpoint (the tensors are stored whole).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/ckpt/export_hf.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/model/parameters.hpp"

namespace strata::cli {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

std::string model_summary(const config::ModelConfig& m) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s: %d layers, d_model %d, %d heads (%d kv), ffn %d, vocab %d, max_seq_len %d, %s, %s, %s, "
                "%s attention, %s embeddings, %s",
                m.name.c_str(), m.num_layers, m.d_model, m.num_heads, m.kv_heads(), m.ffn(), m.vocab_size,
                m.max_seq_len, config::to_string(m.norm), config::to_string(m.mlp), config::to_string(m.positions),
                config::to_string(m.attention), m.tied_embeddings ? "tied" : "untied", m.bias ? "biases" : "no biases");
  return buf;
}

int run_inspect(const std::string& path, bool verify, bool json) {
  const std::string file = ckpt::resolve(path);
  const ckpt::CheckpointInfo info = ckpt::read_info(file);
  nlohmann::ordered_json j;
  j["file"] = file;
  j["file_bytes"] = std::filesystem::file_size(file);
  j["step"] = info.step;
  j["layout"] = info.layout;
  j["tokens_seen"] = info.tokens_seen;
  j["consumed_samples"] = info.consumed_samples;
  j["tokenizer_hash"] = info.tokenizer_hash;
  j["consumed_per_dataset"] = info.consumed_per_dataset;
  std::string summary, arch;
  std::int64_t num_params = -1;
  try {
    const config::JobConfig job = config::parse_job_config(info.config_yaml, file + " (stored config)");
    summary = model_summary(job.model);
    num_params = model::make_parameter_table(job.model).numel();
    try {
      arch = ckpt::to_string(ckpt::choose_hf_arch(job.model));
    } catch (const Error& e) {
      arch = std::string("none (") + e.what() + ")";
    }
  } catch (const Error& e) {
    summary = std::string("(stored config unreadable: ") + e.what() + ")";
  }
  j["model"] = summary;
  j["parameters"] = num_params;
  j["hf_export"] = arch;

  const std::vector<ckpt::StoredTensor> tensors = ckpt::list_tensors(file);
  std::uint64_t total_bytes = 0;
  int bad = 0;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ckpt::StoredTensor& t : tensors) {
    const std::uint64_t bytes = std::uint64_t(shape_numel(t.shape)) * 4;
    total_bytes += bytes;
    nlohmann::ordered_json e = {{"path", t.path}, {"shape", t.shape}, {"dtype", "f32"}, {"bytes", bytes},
                                {"layer", t.layer}, {"checksum", t.checksum}};
    if (verify) {
      const std::vector<float> v = ckpt::read_tensor(file, t.path);
      const bool ok = ckpt::checksum(v.data(), std::int64_t(v.size())) == t.checksum;
      bad += ok ? 0 : 1;
      e["checksum_ok"] = ok;
    }
    list.push_back(std::move(e));
  }
  j["tensor_bytes"] = total_bytes;
  j["tensors"] = list;
  if (verify) j["checksum_mismatches"] = bad;

  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", file.c_str());
    std::printf("  step              %ld\n", info.step);
    std::printf("  layout            %s\n", info.layout.c_str());
    std::printf("  tokens seen       %" PRIu64 "\n", info.tokens_seen);
    std::printf("  consumed samples  %" PRIu64 "\n", info.consumed_samples);
    for (const auto& [ds, n] : info.consumed_per_dataset) std::printf("    %-40s %" PRIu64 "\n", ds.c_str(), n);
    std::printf("  tokenizer hash    %s\n", info.tokenizer_hash.empty() ? "(none)" : info.tokenizer_hash.c_str());
    std::printf("  model             %s\n", summary.c_str());
    if (num_params >= 0) std::printf("  parameters        %" PRId64 "\n", num_params);
    std::printf("  HF export         %s\n", arch.c_str());
    std::printf("  file size         %s (tensor data %s)\n", human_bytes(double(j["file_bytes"].get<std::uint64_t>())).c_str(),
                human_bytes(double(total_bytes)).c_str());
    std::printf("  tensors (%zu)%s\n", tensors.size(), verify ? "; checksum recomputed from the values" : "");
    std::size_t width = 0;
    for (const auto& t : tensors) width = std::max(width, t.path.size());
    for (const auto& e : list) {
      const std::string p = e["path"].get<std::string>();
      std::printf("    %-*s %-16s f32 %12" PRIu64 " B  %016" PRIx64 "%s\n", int(width), p.c_str(),
                  shape_string(e["shape"].get<Shape>()).c_str(), e["bytes"].get<std::uint64_t>(),
                  e["checksum"].get<std::uint64_t>(),
                  !verify ? "" : e["checksum_ok"].get<bool>() ? "  ok" : "  MISMATCH");
    }
    if (verify)
      std::printf("  checksums         %s\n", bad == 0 ? "all match" : (std::to_string(bad) + " MISMATCH").c_str());
  }
  return bad == 0 ? 0 : 2;
}

int run_export_hf(const std::string& path, const ckpt::HfExportOptions& opt) {
  const ckpt::HfExportResult r = ckpt::export_hf(path, opt);
  std::printf("exported %s as Hugging Face %s to %s\n", ckpt::resolve(path).c_str(), ckpt::to_string(r.arch),
              opt.out_dir.c_str());
  std::printf("  weights    %s in %s (%s)\n", human_bytes(double(r.weights.total_bytes)).c_str(),
              r.weights.sharded ? (std::to_string(r.weights.files.size()) + " shards + model.safetensors.index.json").c_str()
                                : "model.safetensors",
              ckpt::st_dtype_name(opt.dtype));
  std::printf("  config     config.json\n");
  std::printf("  tokenizer  %s\n", r.tokenizer_file.empty() ? ("none: " + r.tokenizer_note).c_str()
                                                              : (r.tokenizer_file + " (" + r.tokenizer_note + ")").c_str());
  return 0;
}

}  // namespace

Action add_ckpt_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ckpt", "Checkpoints: strata ckpt inspect|export-hf (no reshard needed: any layout loads any checkpoint)");
  cmd->require_subcommand(1);

  auto* ins = cmd->add_subcommand("inspect", "Print a checkpoint's step, layout, tokens seen, config and every tensor");
  auto ins_path = std::make_shared<std::string>();
  auto no_verify = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  ins->add_option("checkpoint", *ins_path, "Checkpoint file, or a checkpoint folder (its `latest`)")->required();
  ins->add_flag("--no-verify", *no_verify, "Do not read the tensors to recompute their checksums");
  ins->add_flag("--json", *json, "Print JSON instead of text");

  auto* exp = cmd->add_subcommand("export-hf", "Write a checkpoint as a Hugging Face transformers model (GPT-2 or LLaMA)");
  auto exp_path = std::make_shared<std::string>();
  auto opt = std::make_shared<ckpt::HfExportOptions>();
  auto dtype = std::make_shared<std::string>("bf16");
  auto shard = std::make_shared<std::string>("5GB");
  exp->add_option("checkpoint", *exp_path, "Checkpoint file, or a checkpoint folder (its `latest`)")->required();
  exp->add_option("--out", opt->out_dir, "Output folder (created)")->required();
  exp->add_option("--dtype", *dtype, "Weights' dtype")->check(CLI::IsMember({"bf16", "fp32"}))->capture_default_str();
  exp->add_option("--max-shard-size", *shard, "Split the weights into shards above this size (5GB, 500MB, ...)")
      ->capture_default_str();
  exp->add_option("--tokenizer", opt->tokenizer,
                  "Tokenizer spec to export (default: the run's data.tokenizer; 'none': no tokenizer)");

  return [=]() -> int {
    if (ins->parsed()) return run_inspect(*ins_path, !*no_verify, *json);
    opt->dtype = *dtype == "fp32" ? ckpt::StDtype::f32 : ckpt::StDtype::bf16;
    opt->max_shard_bytes = ckpt::parse_byte_size(*shard);
    return run_export_hf(*exp_path, *opt);
  };
}

}  // namespace strata::cli
