// Built instead of src/parallel/cuda/*.cu when strata is configured without CUDA: the engine
// factory exists (the trainer links; --dry-run still plans GPU jobs) and says why it cannot run.
#include "../cuda_engine.hpp"
#include "strata/core/error.hpp"

namespace strata::parallel {

std::unique_ptr<Engine> make_cuda_engine(const config::ModelConfig&, const config::ParallelConfig&,
                                         const config::OptimConfig&, int, int, comm::RankGrid&) {
  throw make_error(
      "hardware.device: cuda needs a build with CUDA support (configure with -DSTRATA_CUDA=ON where nvcc "
      "exists); "
      "`strata train --dry-run` plans the job without one");
}

}  // namespace strata::parallel
