// `strata ckpt inspect DIR|FILE`, `strata ckpt verify DIR|FILE` and `strata ckpt export-hf CKPT --out DIR`
// (docs/checkpoints.md).
// No reshard command: any layout loads any checkpoint (the tensors are stored whole).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/ckpt/export_hf.hpp"
#include "strata/ckpt/verify.hpp"
#include "strata/comm/rank_grid.hpp"
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
                m.max_seq_len, config::to_string(m.norm), config::to_string(m.mlp),
                config::to_string(m.positions), config::to_string(m.attention),
                m.tied_embeddings ? "tied" : "untied", m.bias ? "biases" : "no biases");
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
  {
    const ckpt::GuardState& g = info.guard;
    nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
    for (const auto& [b, e] : g.skipped_samples) skipped.push_back({b, e});
    j["guard"] = {{"loss_mean", g.loss_mean},   {"loss_count", g.loss_count},
                  {"bad_streak", g.bad_streak}, {"skipped_steps", g.skipped_steps},
                  {"rollbacks", g.rollbacks},   {"skipped_samples", skipped}};
  }
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
  ckpt::VerifyResult checked;
  if (verify) checked = ckpt::verify_checkpoint(file);
  std::uint64_t total_bytes = 0;
  int bad = 0;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const ckpt::StoredTensor& t = tensors[i];
    const std::uint64_t bytes = std::uint64_t(shape_numel(t.shape)) * 4;
    total_bytes += bytes;
    nlohmann::ordered_json e = {{"path", t.path}, {"shape", t.shape}, {"dtype", "f32"},
                                {"bytes", bytes}, {"layer", t.layer}, {"checksum", t.checksum}};
    if (verify) {
      const bool ok =
          i < checked.tensors.size() && checked.tensors[i].path == t.path && checked.tensors[i].ok();
      bad += ok ? 0 : 1;
      e["checksum_ok"] = ok;
    }
    list.push_back(std::move(e));
  }
  j["tensor_bytes"] = total_bytes;
  j["tensors"] = list;
  if (verify) {
    j["checksum_mismatches"] = bad;
    j["problems"] = checked.problems;
  }

  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", file.c_str());
    std::printf("  step              %ld\n", info.step);
    std::printf("  layout            %s\n", info.layout.c_str());
    std::printf("  tokens seen       %" PRIu64 "\n", info.tokens_seen);
    std::printf("  consumed samples  %" PRIu64 "\n", info.consumed_samples);
    for (const auto& [ds, n] : info.consumed_per_dataset)
      std::printf("    %-40s %" PRIu64 "\n", ds.c_str(), n);
    std::printf("  tokenizer hash    %s\n",
                info.tokenizer_hash.empty() ? "(none)" : info.tokenizer_hash.c_str());
    const ckpt::GuardState& g = info.guard;
    std::printf(
        "  bad-step guard    %ld step%s skipped, %ld rollback%s; running loss mean %.6g over %ld steps",
        g.skipped_steps, g.skipped_steps == 1 ? "" : "s", g.rollbacks, g.rollbacks == 1 ? "" : "s",
        g.loss_mean, g.loss_count);
    if (g.bad_streak > 0)
      std::printf("; %ld bad step%s in a row", g.bad_streak, g.bad_streak == 1 ? "" : "s");
    std::printf("\n");
    for (const auto& [b, e] : g.skipped_samples)
      std::printf("    samples [%" PRIu64 ", %" PRIu64 ") skipped by a rollback\n", b, e);
    std::printf("  model             %s\n", summary.c_str());
    if (num_params >= 0) std::printf("  parameters        %" PRId64 "\n", num_params);
    std::printf("  HF export         %s\n", arch.c_str());
    std::printf("  file size         %s (tensor data %s)\n",
                human_bytes(double(j["file_bytes"].get<std::uint64_t>())).c_str(),
                human_bytes(double(total_bytes)).c_str());
    std::printf("  tensors (%zu)%s\n", tensors.size(), verify ? "; checksum recomputed from the values" : "");
    std::size_t width = 0;
    for (const auto& t : tensors) width = std::max(width, t.path.size());
    for (const auto& e : list) {
      const std::string p = e["path"].get<std::string>();
      std::printf("    %-*s %-16s f32 %12" PRIu64 " B  %016" PRIx64 "%s\n", int(width), p.c_str(),
                  shape_string(e["shape"].get<Shape>()).c_str(), e["bytes"].get<std::uint64_t>(),
                  e["checksum"].get<std::uint64_t>(),
                  !verify                        ? ""
                  : e["checksum_ok"].get<bool>() ? "  ok"
                                                 : "  MISMATCH");
    }
    if (verify) {
      std::printf("  checksums         %s\n",
                  bad == 0 ? "all match" : (std::to_string(bad) + " MISMATCH").c_str());
      for (const std::string& p : checked.problems) std::printf("  problem           %s\n", p.c_str());
    }
  }
  return verify && !checked.intact() ? 2 : 0;
}

// One checkpoint's verdict as text: a status line and one indented line per problem.
void print_verdict(const ckpt::VerifyResult& v, const std::string& shown_name) {
  if (v.intact()) {
    std::printf("  ok       %s  step %ld, %zu tensors, %s checked in %.2f s (%.2f GB/s)\n",
                shown_name.c_str(), v.step, v.tensors.size(), human_bytes(double(v.tensor_bytes)).c_str(),
                v.seconds, v.seconds > 0 ? double(v.tensor_bytes) / v.seconds / 1e9 : 0.0);
    return;
  }
  std::printf("  DAMAGED  %s  %s%zu problem%s\n", shown_name.c_str(),
              v.step >= 0 ? ("step " + std::to_string(v.step) + ", ").c_str() : "", v.problems.size(),
              v.problems.size() == 1 ? "" : "s");
  for (const std::string& p : v.problems) std::printf("           %s\n", p.c_str());
}

// strata ckpt verify DIR|FILE: every checkpoint of a folder (or one file), each tensor's
// checksum, the format, and the `latest` pointer. Under mpirun the ranks split the reading.
// Exit status 0 when everything is intact, 2 when anything is damaged.
int run_verify(const std::string& path, bool json) {
  namespace fs = std::filesystem;
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 0);
  const bool lead = grid.global_rank() == 0;
  comm::Communicator& group = grid.world_group();
  const bool is_dir = fs::is_directory(path);
  if (!is_dir && !fs::exists(path)) throw make_error("checkpoint '", path, "' does not exist");
  std::vector<std::string> files = is_dir ? ckpt::list_checkpoints(path) : std::vector<std::string>{path};
  if (files.empty()) throw make_error("'", path, "' holds no checkpoint (no step_<N>.h5 files)");

  nlohmann::ordered_json j;
  j["path"] = path;
  std::string latest, latest_problem, stray;
  if (is_dir) {
    std::ifstream in(fs::path(path) / "latest");
    if (in) std::getline(in, latest);
    if (latest.empty())
      latest_problem = "no 'latest' pointer: train.resume=auto takes the newest intact step file";
    else if (!fs::exists(fs::path(path) / latest))
      latest_problem = "'latest' names '" + latest + "', which does not exist";
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(".step_", 0) == 0 && name.ends_with(".tmp")) stray += (stray.empty() ? "" : ", ") + name;
    }
    j["latest"] = latest;
  }
  if (lead && !json) {
    if (is_dir)
      std::printf("%s: %zu checkpoint%s, newest first; latest -> %s\n", path.c_str(), files.size(),
                  files.size() == 1 ? "" : "s", latest.empty() ? "(none)" : latest.c_str());
    if (grid.world_size() > 1) std::printf("  (reading split over %d ranks)\n", grid.world_size());
  }
  int damaged = 0;
  std::string newest_intact;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const std::string& f : files) {
    const ckpt::VerifyResult v = ckpt::verify_checkpoint(f, &group);
    damaged += v.intact() ? 0 : 1;
    if (v.intact() && newest_intact.empty()) newest_intact = f;
    int mismatches = 0;
    for (const auto& t : v.tensors) mismatches += t.ok() ? 0 : 1;
    list.push_back({{"file", f},
                    {"step", v.step},
                    {"intact", v.intact()},
                    {"file_bytes", v.file_bytes},
                    {"tensor_bytes", v.tensor_bytes},
                    {"tensors", v.tensors.size()},
                    {"bad_tensors", mismatches},
                    {"seconds", v.seconds},
                    {"problems", v.problems}});
    if (lead && !json) print_verdict(v, is_dir ? fs::path(f).filename().string() : f);
  }
  j["checkpoints"] = list;
  j["damaged"] = damaged;
  j["newest_intact"] = newest_intact;
  if (!latest_problem.empty()) j["latest_problem"] = latest_problem;
  const bool pointer_bad = !latest.empty() && !latest_problem.empty();
  if (lead) {
    if (json) {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      if (!latest_problem.empty())
        std::printf("  %s  %s\n", pointer_bad ? "DAMAGED " : "note    ", latest_problem.c_str());
      if (!stray.empty())
        std::printf(
            "  note     ignored: %s (temporaries of an interrupted save; the next save removes them)\n",
            stray.c_str());
      std::printf("%d of %zu checkpoint%s damaged", damaged, files.size(), files.size() == 1 ? "" : "s");
      if (is_dir)
        std::printf("; newest intact: %s",
                    newest_intact.empty() ? "none" : fs::path(newest_intact).filename().c_str());
      if (is_dir && !newest_intact.empty() && (damaged > 0 || pointer_bad))
        std::printf(" (train.resume=auto resumes from it)");
      std::printf("\n");
    }
  }
  return damaged > 0 || pointer_bad ? 2 : 0;
}

int run_export_hf(const std::string& path, const ckpt::HfExportOptions& opt) {
  const ckpt::HfExportResult r = ckpt::export_hf(path, opt);
  std::printf("exported %s as Hugging Face %s to %s\n", ckpt::resolve(path).c_str(), ckpt::to_string(r.arch),
              opt.out_dir.c_str());
  std::printf(
      "  weights    %s in %s (%s)\n", human_bytes(double(r.weights.total_bytes)).c_str(),
      r.weights.sharded
          ? (std::to_string(r.weights.files.size()) + " shards + model.safetensors.index.json").c_str()
          : "model.safetensors",
      ckpt::st_dtype_name(opt.dtype));
  std::printf("  config     config.json\n");
  std::printf("  tokenizer  %s\n", r.tokenizer_file.empty()
                                       ? ("none: " + r.tokenizer_note).c_str()
                                       : (r.tokenizer_file + " (" + r.tokenizer_note + ")").c_str());
  return 0;
}

}  // namespace

Action add_ckpt_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ckpt",
                                 "Checkpoints: strata ckpt inspect|verify|export-hf (no reshard needed: any "
                                 "layout loads any checkpoint)");
  cmd->require_subcommand(1);

  auto* ins = cmd->add_subcommand("inspect",
                                  "Print a checkpoint's step, layout, tokens seen, config and every tensor");
  auto ins_path = std::make_shared<std::string>();
  auto no_verify = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  ins->add_option("checkpoint", *ins_path, "Checkpoint file, or a checkpoint folder (its `latest`)")
      ->required();
  ins->add_flag("--no-verify", *no_verify, "Do not read the tensors to recompute their checksums");
  ins->add_flag("--json", *json, "Print JSON instead of text");

  auto* ver = cmd->add_subcommand("verify",
                                  "Check every checkpoint of a folder (or one file): format, truncation, "
                                  "every tensor's checksum; exit status 2 when any is damaged");
  auto ver_path = std::make_shared<std::string>();
  auto ver_json = std::make_shared<bool>(false);
  ver->add_option("path", *ver_path, "Checkpoint folder (every step_<N>.h5 in it) or one checkpoint file")
      ->required();
  ver->add_flag("--json", *ver_json, "Print JSON instead of text");

  auto* exp = cmd->add_subcommand("export-hf",
                                  "Write a checkpoint as a Hugging Face transformers model (GPT-2 or LLaMA)");
  auto exp_path = std::make_shared<std::string>();
  auto opt = std::make_shared<ckpt::HfExportOptions>();
  auto dtype = std::make_shared<std::string>("bf16");
  auto shard = std::make_shared<std::string>("5GB");
  exp->add_option("checkpoint", *exp_path, "Checkpoint file, or a checkpoint folder (its `latest`)")
      ->required();
  exp->add_option("--out", opt->out_dir, "Output folder (created)")->required();
  exp->add_option("--dtype", *dtype, "Weights' dtype")
      ->check(CLI::IsMember({"bf16", "fp32"}))
      ->capture_default_str();
  exp->add_option("--max-shard-size", *shard,
                  "Split the weights into shards above this size (5GB, 500MB, ...)")
      ->capture_default_str();
  exp->add_option("--tokenizer", opt->tokenizer,
                  "Tokenizer spec to export (default: the run's data.tokenizer; 'none': no tokenizer)");

  return [=]() -> int {
    if (ins->parsed()) return run_inspect(*ins_path, !*no_verify, *json);
    if (ver->parsed()) return run_verify(*ver_path, *ver_json);
    opt->dtype = *dtype == "fp32" ? ckpt::StDtype::f32 : ckpt::StDtype::bf16;
    opt->max_shard_bytes = ckpt::parse_byte_size(*shard);
    return run_export_hf(*exp_path, *opt);
  };
}

}  // namespace strata::cli
