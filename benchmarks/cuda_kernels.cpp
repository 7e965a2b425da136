// GPU kernels at LLaMA-2 7B training shapes (d = 4096, ffn = 11008, vocab = 32000, 32 heads
// of 128), timed with CUDA events (manual time: the mean time of one call on the device).
//
// GEMMs (kernels/cuda/matmul.hpp), for N = 4096 and 8192 tokens and each linear layer
// Y[N, out] = X[N, in] W^T, W[out, in]:
//   fwd  Y  = X W^T     M=N,   N=out, K=in   bf16 out
//   dX   dX = dY W      M=N,   N=in,  K=out  bf16 out
//   dW   dW += dY^T X   M=out, N=in,  K=N    fp32 out, beta = 1
// layers: qkv (4096 -> 3*4096), o (4096 -> 4096), gate_up (4096 -> 2*11008, fused),
// down (11008 -> 4096), logits (4096 -> 32000). Path "lt" is cuBLASLt (the default), "cublas"
// is the cublasGemmEx fallback (N = 4096 only), for comparison.
// Attention (kernels/cuda/attention.hpp): forward and backward, B = 1..4, T = 4096, NH = NKV
// = 32, HS = 128, causal, q/k/v inside a fused QKV buffer. FLOPs: attention_forward_flops
// (4 B NH T^2 HS / 2 for causal), backward 2.5x that.
// AdamW (kernels/cuda/adamw.hpp): 2^28 parameters in one segment. Bytes per element: reads
// master 4 + grad 4 + m 4 + v 4, writes master 4 + m 4 + v 4 + bf16 param 2 = 30 bytes.
//
// Counters: TFLOP/s and pct_peak (percent of the device's dense bf16 tensor-core peak from
// kernels/gpu_peaks.hpp; omitted where the device is not in the table), GB/s for AdamW.
// Without a usable GPU the program says so and exits 0.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <string>
#include <vector>

#include "strata/kernels/cuda/adamw.hpp"
#include "strata/kernels/cuda/attention.hpp"
#include "strata/kernels/cuda/matmul.hpp"
#include "strata/kernels/gpu_peaks.hpp"

namespace cuda = strata::kernels::cuda;
using cuda::bf16;
using cuda::index_t;

namespace {

double g_peak_tflops = 0.0;  // 0: unknown device
double g_peak_gbps = 0.0;    // the device's memory bandwidth (datasheet); 0: unknown

// A device allocation of n elements of T, filled with small deterministic values (tensor
// cores draw less power on zeros, which would flatter the timings).
template <class T>
class Buffer {
 public:
  explicit Buffer(std::size_t n) : n_(n) {
    STRATA_CUDA_CHECK(cudaMalloc(&p_, std::max<std::size_t>(n, 1) * sizeof(T)));
    // one 16 MiB host pattern, copied over the buffer piece by piece
    constexpr std::size_t kChunk = std::size_t(1) << 22;
    std::vector<T> host(std::min(n, kChunk));
    unsigned s = 12345u;
    for (auto& v : host) {
      s = s * 1664525u + 1013904223u;
      v = T(float((s >> 9) & 0xffff) / 65536.0f - 0.5f);
    }
    for (std::size_t off = 0; off < n; off += kChunk) {
      const std::size_t m = std::min(kChunk, n - off);
      STRATA_CUDA_CHECK(cudaMemcpy(p_ + off, host.data(), m * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  ~Buffer() { cudaFree(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// Runs fn() once to warm up (algorithm choice, first-touch), then times each iteration with
// CUDA events on `stream`.
template <class Fn>
void time_iterations(benchmark::State& state, cudaStream_t stream, Fn&& fn) {
  cudaEvent_t start, stop;
  STRATA_CUDA_CHECK(cudaEventCreate(&start));
  STRATA_CUDA_CHECK(cudaEventCreate(&stop));
  fn();
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (auto _ : state) {
    STRATA_CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    STRATA_CUDA_CHECK(cudaEventRecord(stop, stream));
    STRATA_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(double(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

void flop_counters(benchmark::State& state, double flops_per_call) {
  const double tflop = flops_per_call * 1e-12;
  state.counters["TFLOP/s"] = benchmark::Counter(tflop, benchmark::Counter::kIsIterationInvariantRate);
  if (g_peak_tflops > 0)
    state.counters["pct_peak"] =
        benchmark::Counter(100.0 * tflop / g_peak_tflops, benchmark::Counter::kIsIterationInvariantRate);
}

enum class Pass { fwd, dx, dw };

void bm_gemm(benchmark::State& state, cudaStream_t stream, index_t tokens, index_t in, index_t out, Pass pass,
             bool force_cublas) {
  cuda::Blas blas(stream);
  blas.set_force_cublas(force_cublas);
  Buffer<bf16> x{std::size_t(tokens * in)}, w{std::size_t(out * in)}, dy{std::size_t(tokens * out)};
  index_t M = 0, N = 0, K = 0;
  switch (pass) {
    case Pass::fwd: {
      Buffer<bf16> y{std::size_t(tokens * out)};
      M = tokens, N = out, K = in;
      time_iterations(state, stream,
                      [&] { blas.linear_forward(y.get(), x.get(), w.get(), nullptr, tokens, in, out); });
      break;
    }
    case Pass::dx: {
      Buffer<bf16> dx{std::size_t(tokens * in)};
      M = tokens, N = in, K = out;
      time_iterations(state, stream, [&] {
        blas.linear_backward(dx.get(), false, nullptr, nullptr, dy.get(), x.get(), w.get(), tokens, in, out);
      });
      break;
    }
    case Pass::dw: {
      Buffer<float> dw{std::size_t(out * in)};
      M = out, N = in, K = tokens;
      time_iterations(state, stream, [&] {
        blas.linear_backward(nullptr, false, dw.get(), nullptr, dy.get(), x.get(), w.get(), tokens, in, out);
      });
      break;
    }
  }
  flop_counters(state, 2.0 * double(M) * double(N) * double(K));
}

cuda::FlashShape attention_shape(index_t B) {
  const index_t T = 4096, NH = 32, HS = 128;
  return {B, T, NH, NH, HS, 3 * NH * HS, 3 * NH * HS, true};
}

void bm_attention(benchmark::State& state, cudaStream_t stream, index_t B, bool backward) {
  const cuda::FlashShape s = attention_shape(B);
  const index_t rows = s.B * s.T, n_out = rows * s.NH * s.HS;
  Buffer<bf16> qkv{std::size_t(rows * s.ld_q)}, out{std::size_t(n_out)}, dout{std::size_t(n_out)};
  Buffer<float> lse{std::size_t(s.B * s.NH * s.T)};
  const bf16 *q = qkv.get(), *k = q + s.NH * s.HS, *v = k + s.NKV * s.HS;
  cuda::attention_forward(out.get(), lse.get(), q, k, v, s, stream);
  if (!backward) {
    time_iterations(state, stream,
                    [&] { cuda::attention_forward(out.get(), lse.get(), q, k, v, s, stream); });
    flop_counters(state, cuda::attention_forward_flops(s));
    return;
  }
  Buffer<bf16> dqkv{std::size_t(rows * s.ld_q)};
  Buffer<float> ws{std::size_t(cuda::attention_workspace_floats(s))};
  bf16* dq = dqkv.get();
  time_iterations(state, stream, [&] {
    cuda::attention_backward(dq, dq + s.NH * s.HS, dq + (s.NH + s.NKV) * s.HS, ws.get(), dout.get(),
                             out.get(), lse.get(), q, k, v, s, stream);
  });
  flop_counters(state, 2.5 * cuda::attention_forward_flops(s));
}

void bm_adamw(benchmark::State& state, cudaStream_t stream) {
  const index_t n = index_t(1) << 28;
  Buffer<float> master{std::size_t(n)}, grad{std::size_t(n)}, m{std::size_t(n)}, v{std::size_t(n)};
  Buffer<bf16> param{std::size_t(n)};
  // v must be >= 0 (it is a running mean of squares)
  STRATA_CUDA_CHECK(cudaMemset(v.get(), 0, std::size_t(n) * sizeof(float)));
  const cuda::AdamWSegment seg{0, 0, n, 0.1f};
  cuda::AdamWSegment* d_seg = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&d_seg, sizeof(seg)));
  STRATA_CUDA_CHECK(cudaMemcpy(d_seg, &seg, sizeof(seg), cudaMemcpyHostToDevice));
  cuda::AdamWStep p{3e-4f, 0.9f, 0.95f, 1e-8f, 1.0f, 1};
  time_iterations(state, stream, [&] {
    cuda::adamw_update(master.get(), param.get(), grad.get(), m.get(), v.get(), d_seg, 1, n, false, p,
                       stream);
    ++p.step;
  });
  cudaFree(d_seg);
  const double bytes = 30.0 * double(n);  // see the top of the file
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (g_peak_gbps > 0)  // % of the memory bandwidth: AdamW is memory-bound
    state.counters["pct_peak"] =
        benchmark::Counter(100.0 * bytes * 1e-9 / g_peak_gbps, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string why;
  if (!cuda::cuda_device_available(&why)) {
    std::printf("bench_cuda_kernels: no usable CUDA device (%s); nothing to measure\n", why.c_str());
    return 0;
  }
  cudaDeviceProp prop{};
  STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::string entry;
  g_peak_tflops = strata::kernels::gpu_peak_bf16_tflops(prop.name, &entry);
  if (const strata::kernels::GpuPeak* peak = strata::kernels::find_gpu_peak(prop.name))
    g_peak_gbps = peak->memory_gb_per_s;
  std::printf("device: %s; dense bf16 peak: %.1f TFLOP/s (%s)\n", prop.name, g_peak_tflops, entry.c_str());
  benchmark::AddCustomContext("gpu", prop.name);
  benchmark::AddCustomContext("bf16_peak_tflops", std::to_string(g_peak_tflops));
  cudaStream_t stream = nullptr;
  STRATA_CUDA_CHECK(cudaStreamCreate(&stream));

  struct Layer {
    const char* name;
    index_t in, out;
  };
  const Layer layers[] = {{"qkv", 4096, 3 * 4096},
                          {"o", 4096, 4096},
                          {"gate_up", 4096, 2 * 11008},
                          {"down", 11008, 4096},
                          {"logits", 4096, 32000}};
  const std::pair<Pass, const char*> passes[] = {{Pass::fwd, "fwd"}, {Pass::dx, "dX"}, {Pass::dw, "dW"}};
  for (index_t tokens : {4096, 8192})
    for (const auto& l : layers)
      for (const auto& [pass, pass_name] : passes)
        for (bool cublas : {false, true}) {
          if (cublas && tokens != 4096) continue;
          const std::string name = std::string("gemm/") + l.name + "/" + pass_name +
                                   "/N:" + std::to_string(tokens) + (cublas ? "/cublas" : "/lt");
          benchmark::RegisterBenchmark(name.c_str(), bm_gemm, stream, tokens, l.in, l.out, pass, cublas)
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
        }
  for (index_t B = 1; B <= 4; ++B)
    for (bool backward : {false, true}) {
      const std::string name = std::string("attention/") + (backward ? "bwd" : "fwd") +
                               "/B:" + std::to_string(B) + "/T:4096/NH:32/HS:128/causal";
      benchmark::RegisterBenchmark(name.c_str(), bm_attention, stream, B, backward)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  benchmark::RegisterBenchmark("adamw/n:268435456", bm_adamw, stream)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  cudaStreamDestroy(stream);
  return 0;
}
