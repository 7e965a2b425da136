// The CUDA engine's factory, private to src/parallel: defined in cuda/engine_cuda.cu where CUDA
// is compiled in, else in cuda/no_cuda.cpp (a clear error).
#pragma once
#include <memory>

#include "strata/parallel/engine.hpp"

namespace strata::parallel {

std::unique_ptr<Engine> make_cuda_engine(const config::ModelConfig& model,
                                         const config::ParallelConfig& parallel,
                                         const config::OptimConfig& optim, int seq_len, int microbatches,
                                         comm::RankGrid& grid);

}  // namespace strata::parallel
