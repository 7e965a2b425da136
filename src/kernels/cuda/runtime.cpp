// The GPU runtime: device choice, RAII streams and events, device and pinned memory for
// MemoryPlan. Host code only (compiled by the C++ compiler against the CUDA runtime).
#include "strata/kernels/cuda/runtime.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace strata::kernels::cuda {

int choose_device(int local_rank, int local_size, int device_count, bool visible_devices_set) {
  STRATA_CHECK(local_size >= 1 && local_rank >= 0 && local_rank < local_size, "select_device: local rank ",
               local_rank, " of ", local_size, " is not a valid index on this node");
  if (device_count <= 0)
    throw make_error("select_device: no CUDA device on this node (local rank ", local_rank, ")");
  // Slurm's per-task binding (--gpus-per-task=1, slurm/bind.sh) leaves each rank one device.
  if (visible_devices_set && device_count == 1) return 0;
  // Two ranks on one device would share its memory and serialise its kernels, and NCCL refuses
  // two ranks of one communicator on the same device: without an explicit CUDA_VISIBLE_DEVICES
  // this is a launch mistake (more ranks per node than GPUs), so say so.
  if (local_size > device_count && !visible_devices_set)
    throw make_error("select_device: ", local_size, " ranks on this node but only ", device_count,
                     " CUDA device(s); launch at most one rank per GPU (e.g. srun --gpus-per-task=1) or "
                     "set CUDA_VISIBLE_DEVICES");
  return local_rank % device_count;
}

int select_device(int local_rank, int local_size) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it: the caller may report and go on
    throw make_error("select_device: no usable CUDA device (local rank ", local_rank, " of ", local_size,
                     "): ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
  }
  const int device =
      choose_device(local_rank, local_size, count, std::getenv("CUDA_VISIBLE_DEVICES") != nullptr);
  STRATA_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

// ---- Stream ---------------------------------------------------------------------------

Stream::Stream(bool high_priority) {
  // cudaDeviceGetStreamPriorityRange: `greatest` is the numerically lowest (highest) priority.
  int least = 0, greatest = 0;
  STRATA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  STRATA_CUDA_CHECK(
      cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, high_priority ? greatest : 0));
}

Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);  // waits for nothing: pending work still completes
}

Stream::Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

void Stream::synchronize(const char* what) const {
  check_cuda(cudaStreamSynchronize(stream_), what, __FILE__, __LINE__);
}

// ---- Event ----------------------------------------------------------------------------

Event::Event(bool timing) {
  // Events without timing are cheaper to record and to wait on.
  STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}

Event::Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    if (event_) cudaEventDestroy(event_);
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

void Event::record(cudaStream_t stream) { STRATA_CUDA_CHECK(cudaEventRecord(event_, stream)); }

void Event::wait_on(cudaStream_t stream) const { STRATA_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }

bool Event::done() const {
  const cudaError_t err = cudaEventQuery(event_);
  if (err == cudaErrorNotReady) return false;
  STRATA_CUDA_CHECK(err);
  return true;
}

void Event::synchronize() const { STRATA_CUDA_CHECK(cudaEventSynchronize(event_)); }

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

// ---- memory ---------------------------------------------------------------------------

std::pair<std::size_t, std::size_t> device_memory_info() {
  std::size_t free_bytes = 0, total_bytes = 0;
  STRATA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return {free_bytes, total_bytes};
}

void allocate_on_device(MemoryPlan& plan) {
  STRATA_CHECK(!plan.allocated(), "MemoryPlan '", plan.owner(), "' allocated twice");
  const std::size_t bytes = std::max<std::size_t>(plan.total_bytes(), 64);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);  // 256-byte aligned: the plan's 64 holds
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it before querying the memory
    std::size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    int device = -1;
    cudaGetDevice(&device);
    throw make_error("MemoryPlan '", plan.owner(), "': cudaMalloc of ", format_bytes(double(bytes)),
                     " on device ", device, " failed (", cudaGetErrorString(err), "); the device has ",
                     format_bytes(double(free_bytes)), " free of ", format_bytes(double(total_bytes)),
                     ". Reduce the micro-batch size, enable activation recomputation or use more "
                     "tensor/pipeline parallelism (strata plan shows the memory per layout)");
  }
  std::shared_ptr<void> arena(p, [](void* q) { cudaFree(q); });
  STRATA_CUDA_CHECK(cudaMemset(p, 0, bytes));
  // cudaMemset runs on the legacy default stream, which the non-blocking compute and
  // communication streams do not synchronise with: wait here so no kernel sees the arena
  // before it is zero. Once per plan, at start-up.
  STRATA_CUDA_CHECK(cudaDeviceSynchronize());
  plan.allocate_with(std::move(arena), Device::cuda);
}

void allocate_pinned(MemoryPlan& plan) {
  STRATA_CHECK(!plan.allocated(), "MemoryPlan '", plan.owner(), "' allocated twice");
  const std::size_t bytes = std::max<std::size_t>(plan.total_bytes(), 64);
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, bytes);  // page-aligned
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw make_error("MemoryPlan '", plan.owner(), "': cudaMallocHost of ", format_bytes(double(bytes)),
                     " of pinned host memory failed: ", cudaGetErrorString(err));
  }
  std::shared_ptr<void> arena(p, [](void* q) { cudaFreeHost(q); });
  std::memset(p, 0, bytes);
  plan.allocate_with(std::move(arena), Device::cpu);  // host memory the GPU can copy from directly
}

}  // namespace strata::kernels::cuda
