// Private helpers shared by the CPU kernel files (not installed, not part of the interface).
//
// - Threading, declared once here: for_each / for_blocks / sum_blocks run a loop over rows,
//   heads or blocks on the kernel threads. Where Kokkos' host execution space is threaded
//   (OpenMP, Threads: a cluster's Kokkos) they are labelled Kokkos parallel_for /
//   parallel_reduce. Where it is Serial (Debian's Kokkos 3.4) and OpenMP is compiled in
//   (STRATA_OPENMP), they are OpenMP loops with a static schedule on kernel_threads() threads
//   (the labels then do not reach Kokkos Tools). Loops too small to pay for waking the
//   threads (under 2^18 elements of work) run on the calling thread.
// - Every loop gives each iteration to one thread and each output element to one iteration,
//   and reductions combine per-block partial results in block order, so results are bitwise
//   the same for any thread count (tested in test_threading.cpp).
// - Lane reductions (lane_sum, lane_max, lane_dot): a reduction written as L independent
//   partial results (L = one 64-byte vector of T) so GCC vectorises it without
//   -ffast-math (it may not reorder a scalar float sum by itself).
// - exp_fast / tanh_fast: for float, a branch-free Cephes-style exp (range reduction
//   x = n ln2 + r, degree-6 polynomial for e^r, 2^n built from the exponent bits) that
//   vectorises; max relative error ~2 ulp over [-87, 88] (tested in test_math.cpp).
//   glibc's libmvec would need -ffast-math to be used, which we do not want. For double
//   (finite-difference tests) they are std::exp / std::tanh.
// - ISA clones: the lambda of a loop whose body is vectorised arithmetic (GELU, softmaxes,
//   cross-entropy, norms, AdamW, sums) is marked STRATA_ISA_CLONES. Where the build's CPU
//   target has no AVX-512 (the default x86-64-v3, a login node's target) GCC then compiles it
//   twice, for the target and for x86-64-v4 (AVX-512, 64-byte vectors), and the dynamic
//   loader picks one copy once from the running CPU (target_clones: an ifunc resolver). An
//   x86-64-v3 binary so runs these loops at AVX-512 width on AVX-512 nodes and never runs an
//   AVX-512 instruction elsewhere (the emulated-AVX2 ctest runs the kernel tests on the default
//   copies). On an AVX-512 CPU the cross-entropy runs 3x and GELU ~1.8x faster, the attention
//   softmax ~20 %; memory-bound loops (AdamW, fill) gain nothing (docs/kernels_cpu.md). Only
//   loops over blocks or rows carry it: each call goes through the resolved pointer, which a
//   per-element lambda (the lane_sum bodies) must not pay. Off with -DSTRATA_ISA_CLONES=OFF;
//   not made where the target already has AVX-512, off x86-64, or with Clang.
//
// The lambdas are host lambdas ([=]) on purpose: these kernels run on
// DefaultHostExecutionSpace and call CBLAS; KOKKOS_LAMBDA would mark them __device__
// under nvcc.
#pragma once
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "strata/kernels/cpu/common.hpp"

// ISA clones (see the file comment); STRATA_HAVE_ISA_CLONES: this build makes them.
#if defined(STRATA_ISA_CLONES_ON) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__AVX512F__)
#define STRATA_ISA_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#define STRATA_HAVE_ISA_CLONES 1
#else
#define STRATA_ISA_CLONES
#define STRATA_HAVE_ISA_CLONES 0
#endif

namespace strata::kernels::cpu::detail {

using HostExec = Kokkos::DefaultHostExecutionSpace;
using HostRange = Kokkos::RangePolicy<HostExec>;

#if defined(KOKKOS_ENABLE_SERIAL)
inline constexpr bool kKokkosHostSerial = std::is_same_v<HostExec, Kokkos::Serial>;
#else
inline constexpr bool kKokkosHostSerial = false;
#endif
#if defined(_OPENMP)
inline constexpr bool kUseOpenMP = kKokkosHostSerial;
#else
inline constexpr bool kUseOpenMP = false;
#endif

// Threads of the OpenMP loops: set by set_blas_threads() (matmul.cpp) with the BLAS threads,
// 0 = OpenMP's default (OMP_NUM_THREADS, else all cores). One value for the process, like
// the BLAS thread count it mirrors, so a kernel called from any thread uses it.
inline std::atomic<int> g_kernel_threads{0};
inline int kernel_threads() {
#if defined(_OPENMP)
  const int t = g_kernel_threads.load(std::memory_order_relaxed);
  return t > 0 ? t : omp_get_max_threads();
#else
  return 1;
#endif
}

// While alive, BLAS calls run on `threads` threads (restored after): kernels that run their
// own parallel loop of small GEMMs (attention) make each GEMM single-threaded. Defined in
// matmul.cpp, next to the other BLAS thread calls.
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads);
  ~BlasThreadsScope();
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int saved_;
};

// Below this many elements of work a loop runs on the calling thread: waking the OpenMP
// workers costs ~5-20 us (passive waiting, kernels/cpu/matmul.cpp), about what a
// memory-bound pass over 2^18 floats takes on one core.
inline constexpr index_t kMinParallelWork = index_t(1) << 18;

// Elements per iteration in flat element-wise kernels: large enough to amortise the call,
// small enough to balance threads.
inline constexpr index_t kBlock = 8192;

// f(i) for i in [0, n): rows, heads or column blocks. `work` estimates the elements one
// iteration touches (decides whether threads pay off).
template <class F>
void for_each(const char* label, index_t n, F f, index_t work = 1024) {
  if (n <= 0) return;
  if constexpr (kUseOpenMP) {
    const int threads = (n >= 2 && n * work >= kMinParallelWork) ? kernel_threads() : 1;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#endif
    for (index_t i = 0; i < n; ++i) f(i);
  } else {
    Kokkos::parallel_for(label, HostRange(0, n), f);
  }
}

// f(i0, i1) on [0, n) in blocks of kBlock.
template <class F>
void for_blocks(const char* label, index_t n, F f) {
  if (n <= 0) return;
  const index_t nb = (n + kBlock - 1) / kBlock;
  for_each(
      label, nb,
      [=](const index_t blk) {
        const index_t i0 = blk * kBlock;
        f(i0, std::min<index_t>(n, i0 + kBlock));
      },
      kBlock);
}

// sum over blocks of g(i0, i1) (a double per block of kBlock elements of [0, n)), added in
// block order whatever the thread count: the partial sums of up to kGroup blocks are
// computed in parallel into a stack array, then added in order.
template <class G>
double sum_blocks(const char* label, index_t n, G g) {
  if (n <= 0) return 0.0;
  constexpr index_t kGroup = 512;
  const index_t nb = (n + kBlock - 1) / kBlock;
  double total = 0.0;
  for (index_t b0 = 0; b0 < nb; b0 += kGroup) {
    const index_t nblk = std::min(kGroup, nb - b0);
    double part[kGroup];
    double* out = part;
    for_each(
        label, nblk,
        [=](const index_t j) {
          const index_t i0 = (b0 + j) * kBlock;
          out[j] = g(i0, std::min<index_t>(n, i0 + kBlock));
        },
        kBlock);
    for (index_t j = 0; j < nblk; ++j) total += part[j];
  }
  return total;
}

template <class T>
inline constexpr int kLanes = 64 / sizeof(T);

// sum_{i<n} g(i), with L partial sums (default: one 64-byte vector of them). A long sum wants
// more: each partial sum waits for its previous add (~4 cycles), so one vector of them is one
// add per 4 cycles.
template <class T, int L = kLanes<T>, class G>
inline T lane_sum(index_t n, G g) {
  T acc[L] = {};
  index_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) acc[j] += g(i + j);
  T tail = 0;
  for (; i < n; ++i) tail += g(i);
  for (int w = L / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0] + tail;
}

// A long sum in double (the cross-entropy's sum of exponentials over the vocabulary, the
// gradient norm's sum of squares): 4 vectors of partial sums, as one would be bounded by
// the adds' latency rather than by memory.
template <class G>
inline double long_sum(index_t n, G g) {
  return lane_sum<double, 4 * kLanes<double>>(n, g);
}

template <class T>
inline T lane_sum(const T* x, index_t n) {
  return lane_sum<T>(n, [x](index_t i) { return x[i]; });
}

template <class T>
inline T lane_dot(const T* a, const T* b, index_t n) {
  return lane_sum<T>(n, [a, b](index_t i) { return a[i] * b[i]; });
}

// max_{i<n} x[i] (n >= 1). GCC vector extensions: the loop vectoriser does not turn a
// compare-select max reduction into vmaxps by itself; with two 64-byte accumulators it does.
template <class T>
inline T lane_max(const T* x, index_t n) {
  typedef T vec __attribute__((vector_size(64)));
  constexpr int L = kLanes<T>;
  T m = x[0];
  index_t i = 0;
  if (n >= 2 * L) {
    vec a, b;
    std::memcpy(&a, x, 64);
    std::memcpy(&b, x + L, 64);
    for (i = 2 * L; i + 2 * L <= n; i += 2 * L) {
      vec u, v;
      std::memcpy(&u, x + i, 64);
      std::memcpy(&v, x + i + L, 64);
      a = u > a ? u : a;
      b = v > b ? v : b;
    }
    a = b > a ? b : a;
    m = a[0];
    for (int j = 1; j < L; ++j) m = a[j] > m ? a[j] : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// e^x for float, branch-free and vectorisable (see the file comment).
inline float exp_approx(float x) {
  x = x < -87.33f ? -87.33f : x;
  x = x > 88.37f ? 88.37f : x;  // keeps n <= 127, so 2^n is a finite float
  // n = round(x / ln2) via the 1.5 * 2^23 trick (exact in round-to-nearest).
  const float shifter = 12582912.0f;
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  // r = x - n ln2 in two pieces (Cody-Waite) so r keeps full precision.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const std::int32_t e = (static_cast<std::int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

template <class T>
inline T exp_fast(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_approx(x);
  else
    return std::exp(x);
}

// tanh(u) = 1 - 2 / (e^{2u} + 1); absolute error ~1e-7 for float (saturates to +-1).
template <class T>
inline T tanh_fast(T u) {
  if constexpr (std::is_same_v<T, float>)
    return 1.0f - 2.0f / (exp_approx(2.0f * u) + 1.0f);
  else
    return std::tanh(u);
}

// Row slice: the column block [c0, c1) of the column-blocked reductions over rows (parameter
// gradients such as dw += sum_n ...), so that threads own disjoint columns (no races).
inline constexpr index_t kColBlock = 64;

}  // namespace strata::kernels::cpu::detail
