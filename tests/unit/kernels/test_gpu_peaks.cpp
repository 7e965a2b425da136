// The GPU peak table: device names as CUDA reports them map to their datasheet entries.
#include <gtest/gtest.h>

#include "strata/kernels/gpu_peaks.hpp"

namespace strata::kernels {
namespace {

TEST(GpuPeaks, DeviceNamesAsCudaReportsThemFindTheirEntries) {
  std::string entry;
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA H100 80GB HBM3", &entry), 989);
  EXPECT_EQ(entry, "H100 SXM5 80GB");
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA H100 PCIe", &entry), 756);
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA H100 NVL", &entry), 835);
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA H200", &entry), 989);
  EXPECT_EQ(entry, "H200 SXM 141GB");
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA GH200 480GB", &entry), 989);
  EXPECT_EQ(entry, "GH200 Grace Hopper (H100 96GB HBM3)");  // not the H200 entry it contains
  EXPECT_DOUBLE_EQ(gpu_peak_bf16_tflops("NVIDIA A100-SXM4-80GB", &entry), 312);
  EXPECT_EQ(find_gpu_peak("NVIDIA A100-SXM4-80GB")->memory_gb_per_s, 2039);
}

TEST(GpuPeaks, UnknownDeviceGivesZeroAndSaysSo) {
  std::string entry;
  EXPECT_EQ(gpu_peak_bf16_tflops("Some Future GPU", &entry), 0.0);
  EXPECT_EQ(entry, "unknown device 'Some Future GPU'");
  EXPECT_EQ(find_gpu_peak(""), nullptr);
}

TEST(GpuPeaks, MoreSpecificNamesComeFirst) {
  // Every entry is reachable: no earlier entry's match is a substring of a later one's.
  const auto& t = gpu_peak_table();
  for (std::size_t i = 0; i < t.size(); ++i)
    for (std::size_t j = i + 1; j < t.size(); ++j)
      EXPECT_EQ(std::string(t[j].match).find(t[i].match), std::string::npos)
          << t[i].match << " shadows " << t[j].match;
}

}  // namespace
}  // namespace strata::kernels
