/* fp32 FMA peak of one core, timed by the thread's CPU time (not wall-clock), so that other
 * jobs on a shared machine do not lower it: 16 independent chains of 16-float FMAs, as
 * src/kernels/cpu/peak.cpp, best of 6 trials of 0.5 s. Used by benchmarks/calibrate_local.sh
 * for configs/clusters/local.yaml's peak_tflops_fp32 (one slot = one core).
 *   cc -O3 -march=native benchmarks/fma_peak.c -o fma_peak && ./fma_peak */
#include <stdio.h>
#include <time.h>

typedef float v16 __attribute__((vector_size(64)));

static double thread_cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  double best = 0;
  for (int trial = 0; trial < 6; ++trial) {
    v16 acc[16];
    for (int j = 0; j < 16; ++j) acc[j] = (v16){0} + 0.5f * (float)(j + 1);
    v16 a = (v16){0} + 0.999999f, b = (v16){0} + 1e-6f;
    const double t0 = thread_cpu_seconds();
    long iters = 0;
    while (thread_cpu_seconds() - t0 < 0.5) {
      __asm__ volatile("" : "+v"(a), "+v"(b));
      for (long it = 0; it < (1L << 14); ++it) {
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) acc[j] = acc[j] * a + b;
      }
      iters += 1L << 14;
    }
    const double dt = thread_cpu_seconds() - t0;
    float s = 0;
    for (int j = 0; j < 16; ++j) s += acc[j][0];
    volatile float sink = s;
    (void)sink;
    const double gflops = (double)iters * 16.0 * 32.0 / dt / 1e9;
    if (gflops > best) best = gflops;
  }
  printf("%.1f\n", best);
  return 0;
}
