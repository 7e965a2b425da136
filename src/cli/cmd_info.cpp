#include <hdf5.h>
#include <mpi.h>

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "commands.hpp"
#include "strata/config.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/peak.hpp"
#include "strata/kernels/cuda/device.hpp"
#include "strata/kernels/gpu_peaks.hpp"

namespace strata::cli {

Action add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print the build, the libraries and the devices strata sees");
  auto peak = std::make_shared<bool>(false);
  auto peak_threads = std::make_shared<int>(0);
  cmd->add_flag("--peak", *peak,
                "Also measure this host's fp32 FMA peak, the probe strata train runs for MFU (1 s)");
  cmd->add_option("--peak-threads", *peak_threads, "Threads of that probe (default: one per core)")
      ->check(CLI::NonNegativeNumber);
  return [peak, peak_threads] {
    char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(mpi_version, &len);
    for (int i = 0; i < len; ++i)
      if (mpi_version[i] == '\n') mpi_version[i] = ' ';
    unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
    H5get_libversion(&h5_major, &h5_minor, &h5_release);
    const kernels::cuda::CudaReport cuda = kernels::cuda::query_cuda();
    std::printf("strata %s (%s, %s)\n", build::version, build::build_type, build::cxx_compiler);
    std::printf("  Kokkos        %d.%d.%d, execution space %s\n", KOKKOS_VERSION / 10000,
                KOKKOS_VERSION / 100 % 100, KOKKOS_VERSION % 100, Kokkos::DefaultExecutionSpace::name());
    std::printf("  BLAS          %s, %d threads\n", kernels::cpu::blas_name(), kernels::cpu::blas_threads());
    std::printf("  MPI           %s\n", mpi_version);
    std::printf("  HDF5          %u.%u.%u (parallel)\n", h5_major, h5_minor, h5_release);
    std::printf("  CPU cores     %u\n", std::thread::hardware_concurrency());
    std::string isas;
    for (kernels::cpu::SimdIsa isa : kernels::cpu::supported_simd_isas())
      isas += std::string(" ") + to_string(isa);
    std::printf("  CPU target    %s (%s); vector instruction sets of this CPU:%s\n", build::cpu_target,
                *build::cpu_flags ? build::cpu_flags : "no -march flag", isas.c_str());
    std::printf("  CPU kernels   %s; element-wise loops: %s\n",
                build::have_openmp ? "threaded with OpenMP where Kokkos is Serial"
                                   : "threaded only by a threaded Kokkos backend",
                kernels::cpu::loop_isa());
    if (*peak) {
      const int n =
          *peak_threads > 0 ? *peak_threads : int(std::max(1u, std::thread::hardware_concurrency()));
      std::printf("  fp32 peak     %.1f GFLOP/s on %d threads (measured)\n",
                  kernels::cpu::measure_fp32_peak_gflops(n, 1.0), n);
    }
    if (!cuda.compiled) {
      std::printf("  CUDA          %s\n", cuda.status.c_str());
      return 0;
    }
    std::printf("  CUDA          runtime %s, driver %s, cuBLAS %s\n", cuda.runtime_version.c_str(),
                cuda.driver_version.c_str(), cuda.cublas_version.c_str());
    std::printf("  NCCL          %s\n", cuda.nccl_version.c_str());
    std::printf("  GPUs          %s\n", cuda.status.c_str());
    for (const auto& d : cuda.devices) {
      std::string entry;  // the MFU denominator the trainer will use for this device
      const double peak = kernels::gpu_peak_bf16_tflops(d.name, &entry);
      std::printf(
          "    [%d] %s, sm_%d%d, %.1f GiB, %d SMs; bf16 peak %s\n", d.index, d.name.c_str(), d.sm_major,
          d.sm_minor, d.memory_gib, d.multiprocessors,
          peak > 0 ? (std::to_string(int(peak)) + " TFLOP/s (" + entry + ")").c_str() : entry.c_str());
    }
    return 0;
  };
}

}  // namespace strata::cli
