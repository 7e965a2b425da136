// The CUDA builds of runtime_model.hpp's interfaces, private to src/model: defined in
// cuda/runtime_model_cuda.cu where CUDA is compiled in, else in cuda/no_cuda.cpp (a clear error).
#pragma once
#include <memory>

#include "strata/model/runtime_model.hpp"

namespace strata::model {

std::unique_ptr<ForwardModel> make_cuda_forward_model(const config::ModelConfig& cfg, int batch, int seq_len,
                                                      comm::RankGrid& grid);
std::unique_ptr<DecoderModel> make_cuda_decoder_model(const config::ModelConfig& cfg, int max_len,
                                                      comm::RankGrid& grid);

}  // namespace strata::model
