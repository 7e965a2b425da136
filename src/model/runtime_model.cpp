// make_forward_model / make_decoder_model (runtime_model.hpp): the CPU backend here, CUDA's in
// cuda/runtime_model_cuda.cu.
#include "cuda_models.hpp"
#include "runtime_model_impl.hpp"
#include "strata/model/transformer.hpp"

namespace strata::model {

std::unique_ptr<ForwardModel> make_forward_model(config::DeviceKind device, const config::ModelConfig& cfg,
                                                 int batch, int seq_len, comm::RankGrid& grid) {
  if (device == config::DeviceKind::cuda) return make_cuda_forward_model(cfg, batch, seq_len, grid);
  return std::make_unique<detail::StageForward<CpuBackend<float>>>(cfg, batch, seq_len, grid,
                                                                   std::make_unique<CpuBackend<float>>());
}

std::unique_ptr<DecoderModel> make_decoder_model(config::DeviceKind device, const config::ModelConfig& cfg,
                                                 int max_len, comm::RankGrid& grid) {
  if (device == config::DeviceKind::cuda) return make_cuda_decoder_model(cfg, max_len, grid);
  return std::make_unique<detail::BackendDecoder<CpuBackend<float>>>(cfg, max_len, grid,
                                                                     std::make_unique<CpuBackend<float>>());
}

}  // namespace strata::model
