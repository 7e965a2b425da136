// Shared pieces of the CUDA kernels: the bf16 type, error checking that throws
// strata::Error naming the call, and launch-size helpers. Included only by code that is
// compiled where CUDA is (src/*/cuda/*.cu, tests/cuda, benchmarks/cuda).
//
// Conventions of every kernel in this folder:
// - Host functions that enqueue work on `stream` and return at once (no synchronisation,
//   no allocation). Pointers are device pointers unless a comment says otherwise.
// - Activations and weights in compute are bf16; statistics, gradients of the residual
//   stream, weight gradients and optimizer state are fp32; arithmetic is fp32.
// - "+=" in a comment means the kernel accumulates into its output, "=" that it overwrites.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "strata/core/error.hpp"

namespace strata::kernels::cuda {

using bf16 = __nv_bfloat16;
using index_t = std::int64_t;

// Throws strata::Error "<what>: <cudaGetErrorString>" when err != cudaSuccess.
void check_cuda(cudaError_t err, const char* what, const char* file, int line);
// Checks the last launch (cudaGetLastError) of kernel `what`.
void check_launch(const char* what, const char* file, int line);

// Whether a usable CUDA device exists; `why` gets the reason when not (no driver, no device).
bool cuda_device_available(std::string* why = nullptr);

inline unsigned grid_for(index_t n, int block, index_t max_blocks = 65535LL * 32) {
  const index_t g = (n + block - 1) / block;
  return unsigned(g < 1 ? 1 : (g > max_blocks ? max_blocks : g));
}

}  // namespace strata::kernels::cuda

#define STRATA_CUDA_CHECK(expr) ::strata::kernels::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
#define STRATA_CUDA_LAUNCH_CHECK(name) ::strata::kernels::cuda::check_launch(name, __FILE__, __LINE__)
