/* Where a program's time goes in single-precision GEMMs: an LD_PRELOAD library that wraps
 * cblas_sgemm, times each call (CLOCK_MONOTONIC) and, at exit, writes per shape (transposes,
 * M, N, K) the calls, seconds and GFLOP/s to $SGEMM_TIMER_OUT.<pid> (default
 * /tmp/sgemm_timer.<pid>). Calls made inside an OpenMP parallel region (attention's per-head
 * GEMMs, single-threaded on each worker) are summed apart, as thread time. Used for
 * docs/performance.md's breakdown of the trainer's step:
 *   cc -O2 -shared -fPIC -fopenmp benchmarks/sgemm_timer.c -o sgemm_timer.so -ldl
 *   LD_PRELOAD=$PWD/sgemm_timer.so build/strata train ...   # twice, N and M steps: the
 *   difference of the totals over M - N steps is the per-step GEMM time */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                         float*, int);
enum { kMaxShapes = 256 };
static struct {
  int ta, tb, M, N, K;
  long calls;
  double seconds;
} shapes[kMaxShapes];
static int nshapes;
static long par_calls;
static double par_seconds, par_flops, total;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  static sgemm_fn real;
  if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
  const double t0 = now();
  real(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const double dt = now() - t0;
  pthread_mutex_lock(&mu);
  if (omp_in_parallel()) {
    ++par_calls;
    par_seconds += dt;
    par_flops += 2.0 * M * N * K;
  } else {
    int i = 0;
    while (i < nshapes && !(shapes[i].ta == ta && shapes[i].tb == tb && shapes[i].M == M &&
                            shapes[i].N == N && shapes[i].K == K))
      ++i;
    if (i == nshapes && nshapes < kMaxShapes) {
      shapes[i].ta = ta, shapes[i].tb = tb, shapes[i].M = M, shapes[i].N = N, shapes[i].K = K;
      ++nshapes;
    }
    if (i < nshapes) ++shapes[i].calls, shapes[i].seconds += dt;
    total += dt;
  }
  pthread_mutex_unlock(&mu);
}

__attribute__((destructor)) static void report(void) {
  if (nshapes == 0 && par_calls == 0) return; /* a child process that ran no GEMM */
  const char* base = getenv("SGEMM_TIMER_OUT");
  char path[512];
  snprintf(path, sizeof path, "%s.%d", base ? base : "/tmp/sgemm_timer", (int)getpid());
  FILE* f = fopen(path, "w");
  if (!f) return;
  fprintf(f,
          "transA transB      M      N      K    calls   seconds  GFLOP/s   (CblasNoTrans 111, CblasTrans "
          "112)\n");
  for (int i = 0; i < nshapes; ++i)
    fprintf(f, "%6d %6d %6d %6d %6d %8ld %9.3f %8.1f\n", shapes[i].ta, shapes[i].tb, shapes[i].M, shapes[i].N,
            shapes[i].K, shapes[i].calls, shapes[i].seconds,
            2.0 * shapes[i].M * shapes[i].N * shapes[i].K * shapes[i].calls / shapes[i].seconds / 1e9);
  fprintf(f, "outside parallel regions: %.3f s\n", total);
  fprintf(f,
          "inside OpenMP parallel regions: %ld calls, %.3f s of thread time, %.2f GFLOP, %.1f GFLOP/s per "
          "thread\n",
          par_calls, par_seconds, par_flops / 1e9, par_seconds > 0 ? par_flops / par_seconds / 1e9 : 0.0);
  fclose(f);
}
