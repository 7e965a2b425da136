/* Memory bandwidth of one core: the STREAM triad c = a + s b over three 128 MiB float arrays,
 * timed by the thread's CPU time (other jobs on a shared machine do not lower it), best of 8,
 * counting the 3 arrays' bytes. Used by benchmarks/calibrate_local.sh for
 * configs/clusters/local.yaml's memory_bandwidth_gb_per_s (one slot = one core).
 *   cc -O3 -march=native benchmarks/core_bandwidth.c -o core_bandwidth && ./core_bandwidth */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  const size_t n = (size_t)1 << 25;
  float* a = malloc(n * sizeof *a);
  float* b = malloc(n * sizeof *b);
  float* c = malloc(n * sizeof *c);
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < n; ++i) a[i] = 1.0f, b[i] = 2.0f, c[i] = 0.0f;
  double best = 0;
  for (int r = 0; r < 8; ++r) {
    const double t0 = thread_cpu_seconds();
    for (size_t i = 0; i < n; ++i) c[i] = a[i] + 1.5f * b[i];
    const double gbs = 3.0 * (double)n * sizeof *a / (thread_cpu_seconds() - t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%.1f\n", best + 0.0f * c[n / 2]);
  free(a), free(b), free(c);
  return 0;
}
