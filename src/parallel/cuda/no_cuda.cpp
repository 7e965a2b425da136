// Built instead of src/parallel/cuda/*.cu when strata is configured without CUDA: the
// GpuEngine exists (the trainer links) and its constructor says why it cannot run.
#include "strata/core/error.hpp"
#include "strata/parallel/gpu_engine.hpp"

namespace strata::parallel {

struct GpuEngine::Impl {};

namespace {
[[noreturn]] void no_cuda() {
  throw make_error(
      "hardware.device: cuda needs a build with CUDA support (configure with -DSTRATA_CUDA=ON where nvcc exists)");
}
}  // namespace

GpuEngine::GpuEngine(const config::ModelConfig&, const config::ParallelConfig&, const config::OptimConfig&, int, int,
                     comm::RankGrid&) {
  no_cuda();
}
GpuEngine::~GpuEngine() = default;
void GpuEngine::init_parameters(std::uint64_t) { no_cuda(); }
StepStats GpuEngine::run(const FillBatch&, float) { no_cuda(); }
StepStats GpuEngine::evaluate(const FillBatch&, int) { no_cuda(); }
double GpuEngine::grad_norm() { no_cuda(); }
double GpuEngine::optimizer_step(double, double) { no_cuda(); }
void GpuEngine::synchronize() { no_cuda(); }
int GpuEngine::microbatches() const { no_cuda(); }
const model::ParameterTable& GpuEngine::table() const { no_cuda(); }
std::string GpuEngine::description() const { no_cuda(); }
std::string GpuEngine::device_name() const { no_cuda(); }
std::size_t GpuEngine::parameter_bytes() const { no_cuda(); }
std::size_t GpuEngine::optimizer_bytes() const { no_cuda(); }
std::size_t GpuEngine::activation_bytes() const { no_cuda(); }
void GpuEngine::download_parameters(float*) { no_cuda(); }
void GpuEngine::download_gradients(float*) { no_cuda(); }
void GpuEngine::upload_parameters(const float*) { no_cuda(); }
const std::vector<Range>& GpuEngine::owned_pieces() const { no_cuda(); }
const std::vector<std::int64_t>& GpuEngine::piece_offsets() const { no_cuda(); }
std::int64_t GpuEngine::padded_numel() const { no_cuda(); }
std::int64_t GpuEngine::state_numel() const { no_cuda(); }
bool GpuEngine::sharded() const { no_cuda(); }
long GpuEngine::steps_taken() const { no_cuda(); }
void GpuEngine::set_steps_taken(long) { no_cuda(); }
void GpuEngine::download_state(float*, float*, float*) { no_cuda(); }
void GpuEngine::upload_state(const float*, const float*, const float*) { no_cuda(); }

}  // namespace strata::parallel
