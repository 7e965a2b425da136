// Helpers of the `cuda` test suite: a fixture that skips (with the reason) where no GPU is
// usable, device buffers filled from and read back to host vectors, bf16 rounding on the
// host, and comparison with tolerances.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "strata/kernels/cuda/common.hpp"

namespace strata::test {

using kernels::cuda::bf16;

// Every test of the suite derives from CudaTest: SetUp skips when there is no device.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!kernels::cuda::cuda_device_available(&why)) GTEST_SKIP() << "no usable CUDA device (" << why << ")";
  }
};

inline float bf16_round(float x) { return __bfloat162float(__float2bfloat16(x)); }
inline std::vector<float> bf16_round(std::vector<float> x) {
  for (float& v : x) v = bf16_round(v);
  return x;
}

// A device array of n T (T = float, bf16, int32...), freed at scope exit.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    STRATA_CUDA_CHECK(cudaMalloc(&p_, std::max<std::size_t>(1, n) * sizeof(T)));
    STRATA_CUDA_CHECK(cudaMemset(p_, 0, std::max<std::size_t>(1, n) * sizeof(T)));
    // cudaMemset and cudaMemcpy run on the legacy default stream, which non-blocking streams
    // (the NCCL tests' compute stream) do not wait for, and a pageable host-to-device
    // cudaMemcpy may return before its DMA has landed: finish both before any use.
    STRATA_CUDA_CHECK(cudaDeviceSynchronize());
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    STRATA_CUDA_CHECK(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    STRATA_CUDA_CHECK(cudaDeviceSynchronize());  // see the constructor
  }
  std::vector<T> download() const {
    STRATA_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    STRATA_CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// bf16 device buffer from float values (rounded) and back to float.
inline std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = __float2bfloat16(x[i]);
  return y;
}
inline std::vector<float> to_float(const std::vector<bf16>& x) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = __bfloat162float(x[i]);
  return y;
}

// |got - want| <= atol + rtol |want| elementwise; reports the worst index.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                            double rtol, double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return ::testing::AssertionFailure() << "non-finite value at " << i;
    const double excess = std::abs(double(got[i]) - want[i]) - (atol + rtol * std::abs(double(want[i])));
    if (excess > worst) worst = excess, at = i;
  }
  if (worst > 0)
    return ::testing::AssertionFailure() << "element " << at << ": got " << got[at] << ", want " << want[at]
                                         << " (rtol " << rtol << ", atol " << atol << ")";
  return ::testing::AssertionSuccess();
}

}  // namespace strata::test
