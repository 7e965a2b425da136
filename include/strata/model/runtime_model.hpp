// Evaluation and generation on the device picked at run time (strata eval, strata generate):
// the training forward (for perplexity over windows) and the decoder, each over that device's
// backend, behind two small interfaces so the commands have no backend branches. On GPUs the
// backend's stream and the grid's NCCL tensor-parallel communicator are set up here.
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/model/parameters.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

// The training forward of the whole model on this TP rank (Stage<B> planned for evaluation:
// no gradients), over batches of [batch, seq_len].
class ForwardModel {
 public:
  virtual ~ForwardModel() = default;
  virtual const ParameterTable& table() const = 0;
  // Every element of table() from host fp32 values (a checkpoint's).
  virtual void upload_parameters(const float* host) = 0;
  virtual std::int64_t activation_rows() const = 0;
  // Host tokens and targets [batch, seq_len]: the summed loss (Stage::forward). Collective over TP.
  virtual LossSum forward(const std::int32_t* tokens, const std::int32_t* targets) = 0;
  // The same, with each position's loss in token_losses [batch * seq_len] (0 where target < 0),
  // for scores per sequence or per document. Collective over TP.
  virtual LossSum forward_losses(const std::int32_t* tokens, const std::int32_t* targets,
                                 float* token_losses) = 0;
};

// The decoder (decoder.hpp) with its logits on the host in fp32.
class DecoderModel {
 public:
  using H = float;
  virtual ~DecoderModel() = default;
  virtual const ParameterTable& table() const = 0;
  virtual void upload_parameters(const float* host) = 0;
  virtual const float* forward(std::span<const std::int32_t> tokens, bool all_rows = false) = 0;
  virtual int position() const = 0;
  virtual void reset() = 0;
  virtual void truncate(int position) = 0;
  virtual int max_len() const = 0;
  virtual int vocab_size() const = 0;
};

// Tensor parallelism over the grid's TP dimension (pp = dp = 1). A build without CUDA throws
// for config::DeviceKind::cuda, naming the setting.
std::unique_ptr<ForwardModel> make_forward_model(config::DeviceKind device, const config::ModelConfig& cfg,
                                                 int batch, int seq_len, comm::RankGrid& grid);
std::unique_ptr<DecoderModel> make_decoder_model(config::DeviceKind device, const config::ModelConfig& cfg,
                                                 int max_len, comm::RankGrid& grid);

}  // namespace strata::model
