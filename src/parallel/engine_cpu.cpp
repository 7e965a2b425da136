// The engine over the CPU backend (fp32), and the factory that picks the backend.
#include "cuda_engine.hpp"
#include "pipeline_impl.hpp"
#include "strata/model/transformer.hpp"

namespace strata::parallel {

template class DistributedOptimizer<model::CpuBackend<float>>;
template class PipelineEngine<model::CpuBackend<float>>;

std::unique_ptr<Engine> make_engine(config::DeviceKind device, const config::ModelConfig& model,
                                    const config::ParallelConfig& parallel, const config::OptimConfig& optim,
                                    int seq_len, int microbatches, comm::RankGrid& grid) {
  if (device == config::DeviceKind::cuda)
    return make_cuda_engine(model, parallel, optim, seq_len, microbatches, grid);
  return std::make_unique<PipelineEngine<model::CpuBackend<float>>>(model, parallel, optim, seq_len,
                                                                    microbatches, grid);
}

}  // namespace strata::parallel
