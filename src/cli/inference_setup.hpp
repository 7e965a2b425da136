// What `strata eval` and `strata generate` share: open a checkpoint (a file, or a directory
// through its `latest` pointer), parse the job config it was written with, load the tokenizer
// of that config (or --tokenizer) and check it against the checkpoint's tokenizer hash, and
// fix the tensor-parallel size (--tp, or the world size; pp = dp = 1; work that splits over
// data-parallel copies, such as per-document scores, may ask for dp = world size / tp).
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::cli {

struct InferenceSetup {
  ckpt::CheckpointInfo info;
  config::JobConfig job;                       // the checkpoint's own config
  std::unique_ptr<data::Tokenizer> tokenizer;  // null unless asked for
  int tp = 1;
  int dp = 1;  // data-parallel copies of the model (data_parallel work: each scores its share)
};

// tp_option: --tp (0: the world size; with data_parallel, 0 is 1 and the world is tp x dp).
// Throws strata::Error naming the path, the option or the mismatch (missing checkpoint,
// tokenizer with another hash, tp not dividing the heads or the ranks ...).
InferenceSetup open_for_inference(const std::string& ckpt_path, const std::string& tokenizer_option,
                                  bool need_tokenizer, int tp_option, int world_size,
                                  bool data_parallel = false);

// --device cpu|cuda (default: the device the checkpoint was trained on).
void add_device_option(CLI::App& cmd, std::string& device);
config::DeviceKind inference_device(const std::string& option, const InferenceSetup& s);

// The checkpoint's parameters into a model of runtime_model.hpp (its TP shard): read on the
// host, checked, uploaded. Collective over the grid.
template <class Model>
void load_into(Model& model, const std::string& file, comm::RankGrid& grid) {
  std::vector<float> host(static_cast<std::size_t>(model.table().numel()));
  ckpt::load_parameters(file, model.table(), host.data(), grid);
  model.upload_parameters(host.data());
}

// "step 300, 1228800 tokens seen, written with tp1-pp1-dp1"
std::string describe(const ckpt::CheckpointInfo& info);

}  // namespace strata::cli
