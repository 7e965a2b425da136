// Datasheet peaks of NVIDIA GPUs; see gpu_peaks.hpp.
#include "strata/kernels/gpu_peaks.hpp"

namespace strata::kernels {

const std::vector<GpuPeak>& gpu_peak_table() {
  // bf16 dense TFLOP/s and memory GB/s from NVIDIA's product datasheets.
  static const std::vector<GpuPeak> table = {
      {"GH200", "GH200 Grace Hopper (H100 96GB HBM3)", 989, 4000},
      {"H200 NVL", "H200 NVL", 835, 4800},
      {"H200", "H200 SXM 141GB", 989, 4800},
      {"H100 PCIe", "H100 PCIe 80GB", 756, 2000},
      {"H100 NVL", "H100 NVL 94GB", 835, 3900},
      {"H100", "H100 SXM5 80GB", 989, 3350},
      {"H800 PCIe", "H800 PCIe 80GB", 756, 2000},
      {"H800", "H800 SXM5 80GB", 989, 3350},
      {"B200", "B200 (HGX)", 2250, 8000},
      {"B100", "B100 (HGX)", 1750, 8000},
      {"A100-SXM4-80GB", "A100 SXM4 80GB", 312, 2039},
      {"A100-SXM4-40GB", "A100 SXM4 40GB", 312, 1555},
      {"A100 80GB PCIe", "A100 PCIe 80GB", 312, 1935},
      {"A100-PCIE-40GB", "A100 PCIe 40GB", 312, 1555},
      {"A100", "A100 (unspecified variant: SXM4 40GB bandwidth)", 312, 1555},
      {"A800", "A800 80GB", 312, 2039},
      {"L40S", "L40S", 362, 864},
      {"L4", "L4", 121, 300},
      {"A10", "A10", 125, 600},
  };
  return table;
}

const GpuPeak* find_gpu_peak(const std::string& device_name) {
  for (const GpuPeak& p : gpu_peak_table())
    if (device_name.find(p.match) != std::string::npos) return &p;
  return nullptr;
}

double gpu_peak_bf16_tflops(const std::string& device_name, std::string* entry) {
  const GpuPeak* p = find_gpu_peak(device_name);
  if (entry) *entry = p ? std::string(p->entry) : "unknown device '" + device_name + "'";
  return p ? p->bf16_tflops : 0.0;
}

}  // namespace strata::kernels
