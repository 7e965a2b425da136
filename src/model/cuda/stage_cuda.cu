// The stage and the decoder over the CUDA backend, and the CUDA builds of runtime_model.hpp's
// interfaces (strata eval / generate --device cuda).
#include "../cuda_models.hpp"
#include "../runtime_model_impl.hpp"
#include "strata/model/cuda_backend.hpp"

namespace strata::model {

template class Stage<CudaBackend>;
template class Decoder<CudaBackend>;

std::unique_ptr<ForwardModel> make_cuda_forward_model(const config::ModelConfig& cfg, int batch, int seq_len,
                                                      comm::RankGrid& grid) {
  return std::make_unique<detail::StageForward<CudaBackend>>(
      cfg, batch, seq_len, grid, std::make_unique<CudaBackend>(grid.local_rank(), grid.local_size()));
}

std::unique_ptr<DecoderModel> make_cuda_decoder_model(const config::ModelConfig& cfg, int max_len,
                                                      comm::RankGrid& grid) {
  return std::make_unique<detail::BackendDecoder<CudaBackend>>(
      cfg, max_len, grid, std::make_unique<CudaBackend>(grid.local_rank(), grid.local_size()));
}

}  // namespace strata::model
