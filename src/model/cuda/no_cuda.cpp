// Built instead of src/model/cuda/*.cu when strata is configured without CUDA: the CUDA
// factories of runtime_model.hpp exist and say why they cannot run.
#include "../cuda_models.hpp"
#include "strata/core/error.hpp"

namespace strata::model {

namespace {
[[noreturn]] void no_cuda() {
  throw make_error(
      "--device cuda needs a build with CUDA support (configure with -DSTRATA_CUDA=ON where nvcc "
      "exists); use --device cpu");
}
}  // namespace

std::unique_ptr<ForwardModel> make_cuda_forward_model(const config::ModelConfig&, int, int, comm::RankGrid&) {
  no_cuda();
}
std::unique_ptr<DecoderModel> make_cuda_decoder_model(const config::ModelConfig&, int, comm::RankGrid&) {
  no_cuda();
}

}  // namespace strata::model
