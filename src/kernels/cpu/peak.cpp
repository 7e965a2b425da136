// fp32 FMA peak of the running CPU, measured.
//
// Loop: each thread keeps NACC independent accumulators of one vector each in registers and
// updates them with acc = acc + acc * a (one FMA per lane, the accumulator both addend and
// multiplicand, so every ISA's destructive FMA form - x86 vfmadd231ps, Arm fmla - updates it
// in place without register copies), unrolled:
//   flops per iteration = 2 * (vector bytes / 4) * NACC.
// NACC must cover the FMA latency times the FMA ports (4 cycles x 2 ports on current x86,
// 4 x 4 on Neoverse V2) without exceeding the register file, or the accumulators spill to the
// stack and the loop measures loads and stores instead (the AVX2 bug this file once had:
// 16 accumulators of 64 bytes on AVX2's 16 registers gave 10.7 GFLOP/s instead of ~170):
//   variant   vector   registers  NACC  (+1 for a)
//   avx512    64 B     32 zmm     24
//   avx2      32 B     16 ymm     12
//   generic   16 B     16 xmm     14    (SSE2 on x86-64: mul + add, no FMA unit assumed; the
//                                         2-operand SSE form needs one temporary: 14 + a + 1.
//                                         A mul + add pair has twice an FMA's latency, so CPUs
//                                         with separate multiply and add pipes, such as AMD
//                                         Zen, need every accumulator the registers hold)
//   neon      16 B     32 v       24
//   sve       VL       32 z       24
// Each variant is a function compiled for its instruction set (GCC/Clang target attributes
// around one generic body written with vector extensions; SVE, whose length is known only at
// run time, uses the ACLE types), chosen at run time from what the CPU reports. a = -2 is read
// through a volatile each window so the loop cannot be folded: acc + acc * (-2) = -acc, exact,
// so the accumulators only change sign (no overflow, no denormals); they leave through a
// volatile sink.
// The file is compiled with -O2 -ffp-contract=fast whatever the build type (CMakeLists.txt):
// the probe measures the hardware, so a debug or sanitizer build must still produce FMAs
// from registers.
//
// Timing (measure_fp32_peak): threads run synchronised windows of ~0.5 ms (a std::barrier
// between windows); a window's rate is the flops of all threads over the time from its first
// start to its last end; the result is the best window. See peak.hpp for why.
#include "strata/kernels/cpu/peak.hpp"

#include <sched.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "strata/core/error.hpp"

#if defined(__aarch64__)
#include <sys/auxv.h>
#if defined(__ARM_FEATURE_SVE)
#include <arm_sve.h>
#endif
#endif

namespace strata::kernels::cpu {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxStateFloats = 24 * 64;  // NACC x 64-byte vector, the largest fixed variant

// Per-thread state: the accumulators between windows (so a window resumes where the last one
// stopped) and the loop constants read through volatiles.
struct alignas(64) LoopState {
  float acc[kMaxStateFloats];
};
volatile float g_a = -2.0f;

// The generic body: `iters` iterations of NACC independent vector FMAs of VB bytes.
// Inlined into each target-specific wrapper below, so the vectors are that target's registers.
template <int VB, int NACC>
[[gnu::always_inline]] inline void fma_body(long iters, LoopState& s) {
  typedef float vec __attribute__((vector_size(VB)));
  constexpr int L = VB / 4;
  vec acc[NACC];
  for (int j = 0; j < NACC; ++j)
    for (int l = 0; l < L; ++l) acc[j][l] = s.acc[j * L + l];
  const float av = g_a;
  const vec a = vec{} + av;
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int j = 0; j < NACC; ++j) acc[j] = acc[j] + acc[j] * a;
  }
  for (int j = 0; j < NACC; ++j)
    for (int l = 0; l < L; ++l) s.acc[j * L + l] = acc[j][l];
}

// flops of one iteration of each variant
constexpr double flops_per_iter(int vector_bytes, int nacc) { return 2.0 * (vector_bytes / 4) * nacc; }

constexpr int kAccWide = 24;     // avx512, neon, sve: 32 vector registers
constexpr int kAccNarrow = 12;   // avx2: 16 vector registers
constexpr int kAccGeneric = 14;  // generic: 16 vector registers, less a and a temporary

void loop_generic(long iters, LoopState& s) { fma_body<16, kAccGeneric>(iters, s); }

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) void loop_avx2(long iters, LoopState& s) {
  fma_body<32, kAccNarrow>(iters, s);
}
__attribute__((target("avx512f"))) void loop_avx512(long iters, LoopState& s) {
  fma_body<64, kAccWide>(iters, s);
}
#endif

#if defined(__aarch64__)
void loop_neon(long iters, LoopState& s) { fma_body<16, kAccWide>(iters, s); }
#if defined(__ARM_FEATURE_SVE)
// SVE: the vector length is a property of the CPU (128..2048 bits), so the accumulators are
// ACLE types. These are sizeless and cannot form an array: 24 named variables, through an
// X-macro. The state holds the first kMaxStateFloats / kAccWide lanes of each (enough for
// 512-bit vectors; longer vectors restart their upper lanes each window, which changes no
// timing). svmla_f32_x(pg, acc, acc, a) = acc + acc * a, one FMA per lane.
// clang-format off
#define STRATA_SVE_ACCS(X) \
  X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
  X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
// clang-format on
void loop_sve(long iters, LoopState& s) {
  const svbool_t pg = svptrue_b32();
  const int L = int(svcntw()), keep = std::min(L, kMaxStateFloats / kAccWide);
  const svbool_t pk = svwhilelt_b32(0, keep);
#define STRATA_LOAD(j) svfloat32_t acc##j = svld1_f32(pk, s.acc + j * keep);
  STRATA_SVE_ACCS(STRATA_LOAD)
#undef STRATA_LOAD
  const svfloat32_t a = svdup_n_f32(g_a);
  for (long it = 0; it < iters; ++it) {
#define STRATA_FMA(j) acc##j = svmla_f32_x(pg, acc##j, acc##j, a);
    STRATA_SVE_ACCS(STRATA_FMA)
#undef STRATA_FMA
  }
#define STRATA_STORE(j) svst1_f32(pk, s.acc + j * keep, acc##j);
  STRATA_SVE_ACCS(STRATA_STORE)
#undef STRATA_STORE
}
static_assert(kAccWide == 24, "STRATA_SVE_ACCS names 24 accumulators");
#undef STRATA_SVE_ACCS
#endif
#endif

using LoopFn = void (*)(long, LoopState&);

struct Variant {
  LoopFn fn = nullptr;
  double flops_per_iter = 0;
};

bool cpu_has(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::generic: return true;
#if defined(__x86_64__) || defined(__i386__)
    case SimdIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdIsa::avx512: return __builtin_cpu_supports("avx512f");
#endif
#if defined(__aarch64__)
    case SimdIsa::neon: return true;  // Advanced SIMD is part of the AArch64 base
#if defined(__ARM_FEATURE_SVE) && defined(HWCAP_SVE)
    case SimdIsa::sve: return (getauxval(AT_HWCAP) & HWCAP_SVE) != 0;
#endif
#endif
    default: return false;
  }
}

Variant variant_of(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::generic: return {loop_generic, flops_per_iter(16, kAccGeneric)};
#if defined(__x86_64__) || defined(__i386__)
    case SimdIsa::avx2: return {loop_avx2, flops_per_iter(32, kAccNarrow)};
    case SimdIsa::avx512: return {loop_avx512, flops_per_iter(64, kAccWide)};
#endif
#if defined(__aarch64__)
    case SimdIsa::neon: return {loop_neon, flops_per_iter(16, kAccWide)};
#if defined(__ARM_FEATURE_SVE)
    case SimdIsa::sve: return {loop_sve, flops_per_iter(int(svcntb()), kAccWide)};
#endif
#endif
    default: return {};
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Iterations for a window of about `target` seconds on one thread.
// The fastest of three timings of the final size, so a preempted try does not shrink it.
long calibrate(const Variant& v, LoopState& s, double target) {
  auto time = [&](long iters) {
    const auto t0 = Clock::now();
    v.fn(iters, s);
    return seconds_since(t0);
  };
  long iters = 64;
  while (time(iters) < target / 4 && iters < (1L << 30)) iters *= 4;
  const double el = std::min({time(iters), time(iters), time(iters)});
  return std::max(64L, long(double(iters) * target / std::max(el, 1e-9)));
}

}  // namespace

const char* to_string(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::generic: return "generic";
    case SimdIsa::avx2: return "avx2";
    case SimdIsa::avx512: return "avx512";
    case SimdIsa::neon: return "neon";
    case SimdIsa::sve: return "sve";
  }
  return "?";
}

std::vector<SimdIsa> supported_simd_isas() {
  std::vector<SimdIsa> out;
  for (SimdIsa isa : {SimdIsa::generic, SimdIsa::neon, SimdIsa::sve, SimdIsa::avx2, SimdIsa::avx512})
    if (cpu_has(isa) && variant_of(isa).fn) out.push_back(isa);
  return out;
}

SimdIsa widest_simd_isa() { return supported_simd_isas().back(); }

int simd_bytes(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::avx2: return 32;
    case SimdIsa::avx512: return 64;
#if defined(__aarch64__) && defined(__ARM_FEATURE_SVE)
    case SimdIsa::sve: return int(svcntb());
#endif
    default: return 16;
  }
}

std::string PeakMeasurement::describe() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.1f GFLOP/s, %s FMA loop, %d thread%s", gflops, to_string(isa), threads,
                threads == 1 ? "" : "s");
  return buf;
}

namespace {

// The process's CPUs (process_cpu_count()); false where they cannot be read.
bool process_cpus(cpu_set_t& set) {
  CPU_ZERO(&set);
#if defined(_OPENMP)
  if (omp_get_proc_bind() != omp_proc_bind_false) {
    std::vector<int> ids;
    for (int p = 0; p < omp_get_num_places(); ++p) {
      ids.resize(std::size_t(std::max(0, omp_get_place_num_procs(p))));
      omp_get_place_proc_ids(p, ids.data());
      for (int id : ids)
        if (id >= 0 && id < CPU_SETSIZE) CPU_SET(id, &set);
    }
    if (CPU_COUNT(&set) > 0) return true;
  }
#endif
  return sched_getaffinity(0, sizeof set, &set) == 0;
}

}  // namespace

int process_cpu_count() {
  cpu_set_t set;
  if (!process_cpus(set)) return int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, CPU_COUNT(&set));
}

PeakMeasurement measure_fp32_peak(SimdIsa isa, int threads, double seconds) {
  STRATA_CHECK(cpu_has(isa) && variant_of(isa).fn, "fp32 peak: this CPU (or this build) has no ",
               to_string(isa), " variant of the FMA loop");
  threads = std::max(1, threads);
  const Variant v = variant_of(isa);
  std::vector<LoopState> state(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i)
    for (int j = 0; j < kMaxStateFloats; ++j) state[std::size_t(i)].acc[j] = 1.0f + 0.001f * float(i + j % 7);
  const long iters = calibrate(v, state[0], 5e-4);

  // Window w of thread i ran from start[w * threads + i] to end[...]; the barrier's
  // completion step (one thread, between phases) decides when to stop.
  const std::size_t max_windows = std::size_t(seconds / 1e-4) + 16;
  std::vector<Clock::time_point> start, end;
  start.reserve(max_windows * std::size_t(threads));
  end.reserve(max_windows * std::size_t(threads));
  start.resize(max_windows * std::size_t(threads));
  end.resize(max_windows * std::size_t(threads));
  std::atomic<bool> stop{false};
  std::size_t windows = 0;
  const auto t_begin = Clock::now();
  auto on_phase = [&]() noexcept {
    ++windows;
    if (windows >= max_windows || seconds_since(t_begin) >= seconds)
      stop.store(true, std::memory_order_relaxed);
  };
  std::barrier sync(threads, on_phase);
  // The calling thread keeps its affinity; the others may run on any of the process's CPUs
  // (wider than the caller's one core where libgomp bound it: process_cpu_count()).
  cpu_set_t cpus;
  const bool spread = process_cpus(cpus);
  auto worker = [&](int i) {
    if (i > 0 && spread) sched_setaffinity(0, sizeof cpus, &cpus);  // 0: the calling thread
    for (std::size_t w = 0;; ++w) {
      const std::size_t k = w * std::size_t(threads) + std::size_t(i);
      start[k] = Clock::now();
      v.fn(iters, state[std::size_t(i)]);
      end[k] = Clock::now();
      sync.arrive_and_wait();  // the completion step has run: `windows` counts w + 1
      if (stop.load(std::memory_order_relaxed)) return;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker, i);
  worker(0);
  for (auto& t : pool) t.join();

  double best = 0;
  const double flops = v.flops_per_iter * double(iters) * threads;
  for (std::size_t w = 0; w < windows; ++w) {
    const auto* s = &start[w * std::size_t(threads)];
    const auto* e = &end[w * std::size_t(threads)];
    const auto t0 = *std::min_element(s, s + threads);
    const auto t1 = *std::max_element(e, e + threads);
    const double el = std::chrono::duration<double>(t1 - t0).count();
    if (el > 0) best = std::max(best, flops / el);
  }
  volatile float sink = 0;
  for (const LoopState& st : state) sink = sink + st.acc[0];
  return {best * 1e-9, isa, threads};
}

PeakMeasurement measure_fp32_peak(int threads, double seconds) {
  return measure_fp32_peak(widest_simd_isa(), threads, seconds);
}

double measure_fp32_peak_gflops(int threads, double seconds) {
  return measure_fp32_peak(threads, seconds).gflops;
}

}  // namespace strata::kernels::cpu
