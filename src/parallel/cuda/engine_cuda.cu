// The engine over the CUDA backend (bf16 compute, fp32 master weights, NCCL), and its factory.
#include "../cuda_engine.hpp"
#include "../pipeline_impl.hpp"
#include "strata/model/cuda_backend.hpp"

namespace strata::model {
extern template class Stage<CudaBackend>;  // instantiated in src/model/cuda/stage_cuda.cu
}

namespace strata::parallel {

template class DistributedOptimizer<model::CudaBackend>;
template class PipelineEngine<model::CudaBackend>;

std::unique_ptr<Engine> make_cuda_engine(const config::ModelConfig& model,
                                         const config::ParallelConfig& parallel,
                                         const config::OptimConfig& optim, int seq_len, int microbatches,
                                         comm::RankGrid& grid) {
  return std::make_unique<PipelineEngine<model::CudaBackend>>(
      model, parallel, optim, seq_len, microbatches, grid,
      std::make_unique<model::CudaBackend>(grid.local_rank(), grid.local_size()));
}

}  // namespace strata::parallel
