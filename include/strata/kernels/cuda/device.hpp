// CUDA device query: what `strata info` reports and what the GPU backend selects devices
// from. Built from device.cu where CUDA is compiled in, else from no_cuda.cpp, which says so.
#pragma once
#include <string>
#include <vector>

namespace strata::kernels::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  double memory_gib = 0;
  int multiprocessors = 0;
};

struct CudaReport {
  bool compiled = false;        // CUDA support built into this binary
  std::string runtime_version;  // e.g. "13.0"
  std::string driver_version;   // "none" without a driver
  std::string cublas_version;
  std::string nccl_version;
  std::vector<DeviceInfo> devices;
  std::string status;  // "2 devices", or why none is usable ("no CUDA device: ...")
};

CudaReport query_cuda();

}  // namespace strata::kernels::cuda
