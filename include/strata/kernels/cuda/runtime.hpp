// The GPU runtime pieces the trainer builds on: device choice, RAII streams and events, and
// device memory for MemoryPlan (one cudaMalloc per plan, carved into views).
//
// Streams: each rank has one compute stream; every NcclCommunicator has its own
// communication stream; ordering between them is by events (comm waits for the compute
// point where the data is ready; compute waits for the collective's completion event).
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "strata/core/memory_plan.hpp"
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

// The device of a rank: with CUDA_VISIBLE_DEVICES naming one device (Slurm's per-task GPU
// binding, slurm/bind.sh), device 0; otherwise local_rank % device_count, where local_rank
// is the rank's index among the job's ranks on its node (MPI_Comm_split_type shared).
// Calls cudaSetDevice and returns the index. Throws (naming both numbers) when there are
// more local ranks than devices and CUDA_VISIBLE_DEVICES is unset, or no device exists.
int select_device(int local_rank, int local_size);
// The choice select_device makes, without touching CUDA (host-testable): device_count is
// what cudaGetDeviceCount reports, visible_devices_set whether CUDA_VISIBLE_DEVICES is set.
int choose_device(int local_rank, int local_size, int device_count, bool visible_devices_set);

class Stream {
 public:
  // A non-blocking stream (no implicit synchronisation with the legacy default stream).
  // priority: 0 = default; lower numbers = higher priority (communication streams use the
  // greatest priority the device offers, so collectives are not starved by compute).
  explicit Stream(bool high_priority = false);
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize(const char* what = "stream synchronize") const;

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  explicit Event(bool timing = false);
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }
  void record(cudaStream_t stream);
  void wait_on(cudaStream_t stream) const;  // `stream` waits for this event
  bool done() const;                        // cudaEventQuery
  void synchronize() const;
  // Milliseconds from `start` to this event (both recorded with timing = true).
  float elapsed_ms_since(const Event& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

// Allocates every entry of `plan` in one zero-filled cudaMalloc; views are Device::cuda.
// Throws naming the plan, its total and the device's free memory when it does not fit.
void allocate_on_device(MemoryPlan& plan);

// Pinned host memory (cudaMallocHost) for a plan used as a staging area (losses, tokens).
void allocate_pinned(MemoryPlan& plan);

// Free and total memory of the current device, in bytes.
std::pair<std::size_t, std::size_t> device_memory_info();

}  // namespace strata::kernels::cuda
