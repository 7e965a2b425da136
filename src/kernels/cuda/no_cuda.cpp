// Built instead of device.cu when strata is configured without CUDA.
#include "strata/kernels/cuda/device.hpp"

namespace strata::kernels::cuda {

CudaReport query_cuda() {
  CudaReport r;
  r.status = "CUDA support not compiled in (configure with -DSTRATA_CUDA=ON where nvcc exists)";
  return r;
}

}  // namespace strata::kernels::cuda
