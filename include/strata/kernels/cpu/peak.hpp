// Measured fp32 FMA peak of this machine: the denominator of "% of peak" in the GEMM
// benchmark and of the model's training-step efficiency.
#pragma once

namespace strata::kernels::cpu {

// Runs a register-resident FMA loop on `threads` std::threads at once for about `seconds`
// and returns the total GFLOP/s over all threads (an FMA counts as 2 flops).
double measure_fp32_peak_gflops(int threads, double seconds);

}  // namespace strata::kernels::cpu
