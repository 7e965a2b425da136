/* fp32 FMA peak of one core, timed by the thread's CPU time (not wall-clock), so that other
 * jobs on a shared machine do not lower it: NACC independent chains of vector FMAs of the
 * widest vectors the compiler targets, best of 6 trials of 0.5 s. An independent check of
 * src/kernels/cpu/peak.cpp (written separately, chosen at compile time, not at run time):
 * used by benchmarks/calibrate_local.sh for configs/clusters/local.yaml's peak_tflops_fp32
 * (one slot = one core) and by tests/emulated/avx2_cpu.sh. Build it for the CPU it measures:
 *   cc -O3 -march=native benchmarks/fma_peak.c -o fma_peak && ./fma_peak
 * No inline assembly: the loop constants come through volatiles, the result leaves through a
 * volatile sink, so the compiler can neither fold nor drop the loop.
 *
 *   target            vector bytes  registers  chains (what a register file holds, less a)
 *   AVX-512F          64            32 zmm     24
 *   AVX2 + FMA        32            16 ymm     12
 *   NEON (AArch64)    16            32 v       24
 *   otherwise (SSE2)  16            16 xmm     12 (multiply + add: no FMA assumed) */
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#define VB 64
#define NACC 24
#elif defined(__AVX2__) && defined(__FMA__)
#define VB 32
#define NACC 12
#elif defined(__aarch64__)
#define VB 16
#define NACC 24
#else
#define VB 16
#define NACC 12
#endif
#define LANES (VB / 4)

typedef float vec __attribute__((vector_size(VB)));

/* acc -> acc + acc * a with a = -2 is exact (acc changes sign): no overflow, no denormals. */
static volatile float g_a = -2.0f;

static double thread_cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  double best = 0;
  for (int trial = 0; trial < 6; ++trial) {
    vec acc[NACC];
    for (int j = 0; j < NACC; ++j) acc[j] = (vec){0} + 0.5f * (float)(j + 1);
    const vec a = (vec){0} + g_a;
    const double t0 = thread_cpu_seconds();
    long iters = 0;
    while (thread_cpu_seconds() - t0 < 0.5) {
      for (long it = 0; it < (1L << 14); ++it) {
#pragma GCC unroll 24
        for (int j = 0; j < NACC; ++j) acc[j] = acc[j] + acc[j] * a;
      }
      iters += 1L << 14;
    }
    const double dt = thread_cpu_seconds() - t0;
    float s = 0;
    for (int j = 0; j < NACC; ++j) s += acc[j][0];
    volatile float sink = s;
    (void)sink;
    const double gflops = (double)iters * NACC * LANES * 2.0 / dt / 1e9;
    if (gflops > best) best = gflops;
  }
  printf("%.4g\n", best); /* GFLOP/s, 4 significant digits (an emulated CPU runs at ~1) */
  return 0;
}
