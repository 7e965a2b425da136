// Error checking and device availability for the CUDA kernels.
#include "strata/kernels/cuda/common.hpp"

#include <string>

namespace strata::kernels::cuda {

void check_cuda(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return;
  int device = -1;
  cudaGetDevice(&device);
  throw make_error("CUDA error in ", what, " (", file, ":", line, ", device ", device,
                   "): ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}

void check_launch(const char* what, const char* file, int line) {
  check_cuda(cudaGetLastError(), what, file, line);
}

bool cuda_device_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls do not see it
    if (why) *why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    return false;
  }
  if (count == 0) {
    if (why) *why = "cudaGetDeviceCount found 0 devices";
    return false;
  }
  return true;
}

}  // namespace strata::kernels::cuda
