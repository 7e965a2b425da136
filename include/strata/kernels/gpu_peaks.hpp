// Dense bf16 tensor-core peaks and memory bandwidths of NVIDIA GPUs, keyed by the name CUDA
// reports (cudaDeviceProp::name): the denominators of MFU on GPUs and of the kernel
// benchmarks' "% of peak". Plain C++ (no CUDA needed), so the planner and tests can use it.
// Figures are the vendors' datasheet numbers without sparsity.
#pragma once
#include <string>
#include <vector>

namespace strata::kernels {

struct GpuPeak {
  const char* match;       // substring of the device name (first match in table order wins)
  const char* entry;       // the datasheet product the numbers are for
  double bf16_tflops;      // dense bf16 tensor-core peak
  double memory_gb_per_s;  // HBM/GDDR bandwidth
};

// The table, most specific names first ("H100 PCIe" before "H100", "GH200" before "H200").
const std::vector<GpuPeak>& gpu_peak_table();
// The entry for `device_name`, or nullptr when no entry matches.
const GpuPeak* find_gpu_peak(const std::string& device_name);
// Its bf16 peak in TFLOP/s (0 when unknown); `entry` gets the product name used, or
// "unknown device '<name>'".
double gpu_peak_bf16_tflops(const std::string& device_name, std::string* entry = nullptr);

}  // namespace strata::kernels
