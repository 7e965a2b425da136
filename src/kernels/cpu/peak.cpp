// fp32 FMA peak, measured.
//
// Each thread keeps kAcc independent accumulators of one 64-byte vector (16 floats) in
// registers and updates them with acc = acc * a + b (one FMA each) in an unrolled loop.
// kAcc = 16 independent chains cover FMA latency (4 cycles) x 2 FMA ports with room to
// spare, and 16 + 2 vector registers fit in AVX-512's 32. flops = 2 * 16 * kAcc per
// iteration. The accumulators converge to a fixed point (a < 1), so no value overflows, and
// their sum is returned through a volatile sink so the loop cannot be removed. The empty
// asm with a "+v" constraint additionally hides the constant a/b from the optimiser so the
// loop is not folded. Without AVX-512 the same code runs on narrower vectors that the
// compiler splits, so the figure stays meaningful (what this build can reach).
// The result is the best of 5 trials of seconds/5 each (see measure_fp32_peak_gflops).
#include "strata/kernels/cpu/peak.hpp"

#include <algorithm>
#include <chrono>
#include <latch>
#include <thread>
#include <vector>

namespace strata::kernels::cpu {

namespace {

typedef float v16 __attribute__((vector_size(64)));
constexpr int kAcc = 16;
constexpr long kInner = 1L << 14;  // iterations between clock reads

// Runs batches of kInner iterations until `seconds` have passed; returns flops done.
double fma_loop(double seconds, float seed, float& sink) {
  v16 acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = v16{} + seed * float(j + 1);
  v16 a = v16{} + 0.999999f, b = v16{} + 1e-6f;
  const auto t0 = std::chrono::steady_clock::now();
  long iters = 0;
  for (;;) {
    asm volatile("" : "+v"(a), "+v"(b));
    for (long it = 0; it < kInner; ++it) {
#pragma GCC unroll 16
      for (int j = 0; j < kAcc; ++j) acc[j] = acc[j] * a + b;
    }
    iters += kInner;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el >= seconds) break;
  }
  float s = 0;
  for (int j = 0; j < kAcc; ++j)
    for (int l = 0; l < 16; ++l) s += acc[j][l];
  sink = s;
  return 2.0 * 16.0 * kAcc * static_cast<double>(iters);
}

}  // namespace

namespace {

// One trial: all threads run the loop concurrently for `seconds`; total GFLOP/s.
double trial_gflops(int threads, double seconds) {
  std::vector<double> flops(threads, 0.0);
  std::vector<float> sinks(threads, 0.0f);
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      start.arrive_and_wait();
      flops[i] = fma_loop(seconds, 1.0f + 0.01f * i, sinks[i]);
    });
  }
  start.arrive_and_wait();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& t : pool) t.join();
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0.0;
  volatile float sink = 0.0f;
  for (int i = 0; i < threads; ++i) {
    total += flops[i];
    sink = sink + sinks[i];
  }
  return total / el * 1e-9;
}

}  // namespace

double measure_fp32_peak_gflops(int threads, double seconds) {
  if (threads < 1) threads = 1;
  // The best of several short trials: a peak is a maximum, and on a shared machine a
  // trial that overlaps someone else's work only reads low.
  const int trials = seconds >= 0.2 ? 5 : 1;
  double best = 0.0;
  for (int i = 0; i < trials; ++i) best = std::max(best, trial_gflops(threads, seconds / trials));
  return best;
}

}  // namespace strata::kernels::cpu
