#include "inference_setup.hpp"

#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"

namespace strata::cli {

InferenceSetup open_for_inference(const std::string& ckpt_path, const std::string& tokenizer_option,
                                  bool need_tokenizer, int tp_option, int world_size, bool data_parallel) {
  InferenceSetup s;
  s.info = ckpt::read_info(ckpt::resolve(ckpt_path));
  try {
    s.job = config::parse_job_config(s.info.config_yaml, s.info.file + " (its stored config)");
  } catch (const std::exception& e) {
    throw make_error(s.info.file, ": cannot use the job config stored in the checkpoint: ", e.what());
  }
  if (data_parallel) {
    s.tp = tp_option > 0 ? tp_option : 1;
    if (world_size % s.tp != 0)
      throw make_error("--tp ", s.tp, " does not divide the job's ", world_size,
                       " ranks (the rest are data-parallel)");
    s.dp = world_size / s.tp;
  } else {
    s.tp = tp_option > 0 ? tp_option : world_size;
    if (s.tp != world_size)
      throw make_error("--tp ", s.tp, " needs exactly ", s.tp, " ranks (mpiexec -n ", s.tp,
                       "), but the job has ", world_size,
                       "; inference runs tensor-parallel only (pp = dp = 1)");
  }
  const config::ModelConfig& m = s.job.model;
  if (m.num_heads % s.tp || m.kv_heads() % s.tp || m.ffn() % s.tp)
    throw make_error("tp = ", s.tp, " must divide the model's heads (", m.num_heads, "), KV heads (",
                     m.kv_heads(), ") and MLP width (", m.ffn(), ")");
  if (!need_tokenizer) return s;
  const std::string spec = tokenizer_option.empty() ? s.job.data.tokenizer : tokenizer_option;
  if (spec.empty())
    throw make_error(s.info.file,
                     ": its config names no data.tokenizer; pass --tokenizer SPEC (the tokenizer "
                     "the training data was prepared with)");
  s.tokenizer = data::load_tokenizer(spec);
  if (!s.info.tokenizer_hash.empty() && s.tokenizer->content_hash() != s.info.tokenizer_hash)
    throw make_error("tokenizer '", spec, "' (hash ", s.tokenizer->content_hash(), ") is not the one ",
                     s.info.file, " was trained with (hash ", s.info.tokenizer_hash, ")");
  if (s.tokenizer->vocab_size() > m.vocab_size)
    throw make_error("tokenizer '", spec, "' has ", s.tokenizer->vocab_size(),
                     " tokens but the model's vocabulary is ", m.vocab_size);
  return s;
}

void add_device_option(CLI::App& cmd, std::string& device) {
  cmd.add_option("--device", device, "Run on cpu or cuda (default: the device the checkpoint was trained on)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

config::DeviceKind inference_device(const std::string& option, const InferenceSetup& s) {
  if (option.empty()) return s.job.hardware.device;
  return option == "cuda" ? config::DeviceKind::cuda : config::DeviceKind::cpu;
}

std::string describe(const ckpt::CheckpointInfo& info) {
  std::ostringstream os;
  os << "step " << info.step << ", " << info.tokens_seen << " tokens seen, written with " << info.layout;
  return os.str();
}

}  // namespace strata::cli
