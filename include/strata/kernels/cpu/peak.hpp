// Measured fp32 FMA peak of the running CPU: the denominator of "% of peak" in the benchmarks
// and of the trainer's MFU on CPUs.
//
// The probe runs register-resident fused multiply-adds on the widest vectors the RUNNING CPU
// has, whatever the build's target (STRATA_CPU_TARGET): each variant is compiled for its own
// instruction set and chosen at run time, so an x86-64-v3 build measures AVX-512 on an AVX-512
// node, and an AVX-512 probe is never run on a CPU without it.
#pragma once
#include <string>
#include <vector>

namespace strata::kernels::cpu {

// Vector instruction sets the probe has a variant for, widest last within an architecture.
enum class SimdIsa {
  generic,  // 16-byte vectors as the compiler lowers them (SSE2 on x86-64, or scalar code)
  avx2,     // x86: 32-byte vectors, FMA3 (x86-64-v3)
  avx512,   // x86: 64-byte vectors, AVX-512F
  neon,     // Arm: 16-byte Advanced SIMD vectors, FMA
  sve,      // Arm: SVE vectors of the CPU's length (built only where the target has SVE)
};
const char* to_string(SimdIsa isa);

// Variants the running CPU can execute (generic always), in increasing width.
std::vector<SimdIsa> supported_simd_isas();
// The widest of them: what the probe measures by default.
SimdIsa widest_simd_isa();
// Bytes per vector of `isa` on this CPU (SVE: the CPU's vector length).
int simd_bytes(SimdIsa isa);

struct PeakMeasurement {
  double gflops = 0;  // total over all threads; an FMA counts as 2 flops
  SimdIsa isa = SimdIsa::generic;
  int threads = 0;
  std::string describe() const;  // e.g. "341.2 GFLOP/s, avx512 FMA loop, 2 threads"
};

// Runs the FMA loop of `isa` on `threads` threads at once for about `seconds` and returns the
// best aggregate rate over many short synchronised windows (each ~0.5 ms: all threads start
// a window together and it ends when the last finishes). A peak is a maximum: on a shared
// machine windows that overlap someone else's work read low and are discarded, while a
// thread count above the available cores still reads the cores' total (threads in a window
// wait for each other). Throws strata::Error if the CPU cannot run `isa`.
PeakMeasurement measure_fp32_peak(SimdIsa isa, int threads, double seconds);
// The same on widest_simd_isa().
PeakMeasurement measure_fp32_peak(int threads, double seconds);

// measure_fp32_peak(threads, seconds).gflops (the original interface).
double measure_fp32_peak_gflops(int threads, double seconds);

// CPUs this process may run on, at least 1. Not the calling thread's affinity: with
// OMP_PROC_BIND set (slurm/bind.sh sets it for a rank pinned to its cores) libgomp binds the
// initial thread to the first of its places when it loads, before main, so that thread's mask
// is then one core; the process's CPUs are the union of the places, which libgomp built from
// the mask the process started with. The probe's threads run on these CPUs, so a bound rank
// measures all its cores, not one core shared by all the probe's threads.
int process_cpu_count();

}  // namespace strata::kernels::cpu
