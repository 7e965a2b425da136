// CUDA device query for `strata info`. A machine without a GPU (or without a driver) gets
// a clean "no CUDA device" status rather than an error: cudaGetDeviceCount then returns
// cudaErrorNoDevice or cudaErrorInsufficientDriver.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "strata/kernels/cuda/device.hpp"

namespace strata::kernels::cuda {

namespace {
std::string version_string(int v) {  // CUDA encodes 13.0 as 13000
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
}  // namespace

CudaReport query_cuda() {
  CudaReport r;
  r.compiled = true;
  int v = 0;
  r.runtime_version = cudaRuntimeGetVersion(&v) == cudaSuccess ? version_string(v) : "unknown";
  r.driver_version = (cudaDriverGetVersion(&v) == cudaSuccess && v > 0) ? version_string(v) : "none";
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  r.cublas_version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess)
    r.nccl_version = std::to_string(nccl / 10000) + "." + std::to_string((nccl % 10000) / 100) + "." +
                     std::to_string(nccl % 100);
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    r.status = std::string("no CUDA device: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return r;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    r.devices.push_back({i, prop.name, prop.major, prop.minor,
                         double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), prop.multiProcessorCount});
  }
  r.status = count == 0 ? "no CUDA device" : std::to_string(count) + " device(s)";
  return r;
}

}  // namespace strata::kernels::cuda
