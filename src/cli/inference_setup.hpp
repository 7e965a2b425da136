// What `strata eval` and `strata generate` share: open a checkpoint (a file, or a directory
// through its `latest` pointer), parse the job config it was written with, load the tokenizer
// of that config (or --tokenizer) and check it against the checkpoint's tokenizer hash, and
// fix the tensor-parallel size (--tp, or the world size; pp = dp = 1).
#pragma once
#include <memory>
#include <string>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/config.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::cli {

struct InferenceSetup {
  ckpt::CheckpointInfo info;
  config::JobConfig job;                       // the checkpoint's own config
  std::unique_ptr<data::Tokenizer> tokenizer;  // null unless asked for
  int tp = 1;
};

// tp_option: --tp (0: the world size). Throws strata::Error naming the path, the option or the
// mismatch (missing checkpoint, tokenizer with another hash, tp not dividing the heads ...).
InferenceSetup open_for_inference(const std::string& ckpt_path, const std::string& tokenizer_option,
                                  bool need_tokenizer, int tp_option, int world_size);

// "step 300, 1228800 tokens seen, written with tp1-pp1-dp1"
std::string describe(const ckpt::CheckpointInfo& info);

}  // namespace strata::cli
