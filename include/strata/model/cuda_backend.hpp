// The CUDA backend of the model stage (model/backend.hpp has the interface): bf16 activations
// and compute weights, fp32 gradients (weights and residual stream), statistics, losses and
// master weights; the kernels of kernels/cuda (cuBLASLt GEMMs, flash attention, fused
// cross-entropy, AdamW) on one compute stream; memory from MemoryPlans on the device (pinned for
// host staging). Needs the CUDA headers: included by the .cu files that instantiate the stage,
// the decoder and the engine (src/model/cuda, src/parallel/cuda) and by the CUDA tests.
//
// Ordering: every operation is enqueued on the compute stream and returns at once; uploads and
// downloads are stream-ordered (cudaMemcpyAsync on the compute stream, never the legacy default
// stream, which the non-blocking compute stream does not wait for). synchronize() blocks the
// host. Timing marks are events recorded on the stream, read after a synchronize().
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "strata/kernels/cuda/activations.hpp"
#include "strata/kernels/cuda/adamw.hpp"
#include "strata/kernels/cuda/attention.hpp"
#include "strata/kernels/cuda/common.hpp"
#include "strata/kernels/cuda/cross_entropy.hpp"
#include "strata/kernels/cuda/elementwise.hpp"
#include "strata/kernels/cuda/embedding.hpp"
#include "strata/kernels/cuda/matmul.hpp"
#include "strata/kernels/cuda/norm.hpp"
#include "strata/kernels/cuda/rope.hpp"
#include "strata/kernels/cuda/runtime.hpp"
#include "strata/model/backend.hpp"

namespace strata {
template <>
constexpr DType dtype_of<kernels::cuda::bf16>() {
  return DType::bf16;
}
}  // namespace strata

namespace strata::model {

class CudaBackend {
 public:
  using bf16 = kernels::cuda::bf16;
  using Act = bf16;
  using Grad = float;
  using Stat = float;
  using Host = float;
  using index_t = std::int64_t;

  static BackendSpec spec() { return cuda_backend_spec(); }

  // Selects this rank's device (the node-local rank's, or the one CUDA_VISIBLE_DEVICES leaves)
  // and creates the compute stream and the cuBLAS(Lt) handles on it.
  CudaBackend(int local_rank, int local_size)
      : device_(kernels::cuda::select_device(local_rank, local_size)),
        stream_(activated(device_)),
        blas_(stream_.get()) {
    STRATA_CUDA_CHECK(cudaMalloc(&norm_dev_, sizeof(float)));
    STRATA_CUDA_CHECK(cudaMallocHost(&norm_host_, sizeof(float)));
  }
  ~CudaBackend() {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_.get());
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    cudaFree(norm_dev_);
    cudaFreeHost(norm_host_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // Several engines may live in one process on different devices: each call site that may
  // follow another engine's work makes this one's device current.
  void activate() const { STRATA_CUDA_CHECK(cudaSetDevice(device_)); }
  int device() const { return device_; }
  void* stream_handle() const { return static_cast<void*>(stream_.get()); }
  cudaStream_t stream() const { return stream_.get(); }
  kernels::cuda::Blas& blas() { return blas_; }
  std::string device_name() const {
    cudaDeviceProp prop{};
    STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    return prop.name;
  }
  std::string describe() const {
    activate();
    const auto [free_b, total_b] = kernels::cuda::device_memory_info();
    return "CUDA backend on device " + std::to_string(device_) + " (" + device_name() + ", " +
           format_bytes(double(total_b)) + ", " + format_bytes(double(free_b)) + " free)";
  }

  // ---- memory ---------------------------------------------------------------------------
  void allocate(MemoryPlan& plan) const { kernels::cuda::allocate_on_device(plan); }
  void allocate_host(MemoryPlan& plan) const { kernels::cuda::allocate_pinned(plan); }
  void upload(void* dst, const void* host, std::size_t bytes) const {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream()));
  }
  void download(void* host, const void* src, std::size_t bytes) const {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream()));
  }
  void synchronize() {
    stream_.synchronize("CudaBackend::synchronize");
    next_event_ = 0;  // the marks of the work just finished are read before new ones are recorded
  }
  void fill(float* x, float value, index_t n) const { kernels::cuda::fill_f32(x, value, n, stream()); }
  void fill(bf16* x, bf16 value, index_t n) const {
    kernels::cuda::fill_bf16(x, __bfloat162float(value), n, stream());
  }
  template <class U>
  void copy(U* y, const U* x, index_t n) const {
    STRATA_CUDA_CHECK(cudaMemcpyAsync(y, x, std::size_t(n) * sizeof(U), cudaMemcpyDeviceToDevice, stream()));
  }
  // y[r ld_y + j] = x[r ld_x + j] for r < rows, j < cols (one strided copy on the stream).
  template <class U>
  void copy_2d(U* y, index_t ld_y, const U* x, index_t ld_x, index_t rows, index_t cols) const {
    STRATA_CUDA_CHECK(cudaMemcpy2DAsync(y, std::size_t(ld_y) * sizeof(U), x, std::size_t(ld_x) * sizeof(U),
                                        std::size_t(cols) * sizeof(U), std::size_t(rows),
                                        cudaMemcpyDeviceToDevice, stream()));
  }
  void accumulate(bf16* y, const bf16* x, index_t n) const { kernels::cuda::add_bf16(y, y, x, n, stream()); }
  void accumulate(float* y, const float* x, index_t n) const {
    kernels::cuda::accumulate_f32(y, x, n, stream());
  }
  void add_bias(bf16* y, const bf16* bias, index_t rows, index_t cols) const {
    kernels::cuda::add_bias_bf16(y, bias, rows, cols, stream());
  }
  void cast_grad_to_act(bf16* y, const float* x, index_t n) const {
    kernels::cuda::cast_f32_to_bf16(y, x, n, stream());
  }
  // Host fp32 <-> device bf16 for initialisation, checkpoints and the decoder's logits (not the
  // training step): through a temporary device buffer, or a host buffer kept for reuse.
  void upload_cast(bf16* dst, const float* host, index_t n) {
    float* tmp = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&tmp, std::size_t(std::max<index_t>(n, 1)) * sizeof(float)));
    STRATA_CUDA_CHECK(
        cudaMemcpyAsync(tmp, host, std::size_t(n) * sizeof(float), cudaMemcpyHostToDevice, stream()));
    kernels::cuda::cast_f32_to_bf16(dst, tmp, n, stream());
    synchronize();
    STRATA_CUDA_CHECK(cudaFree(tmp));
  }
  void download_cast(float* host, const bf16* src, index_t n) {
    host_bf16_.resize(std::size_t(n));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(host_bf16_.data(), src, std::size_t(n) * sizeof(bf16),
                                      cudaMemcpyDeviceToHost, stream()));
    synchronize();
    for (index_t i = 0; i < n; ++i) host[i] = __bfloat162float(host_bf16_[std::size_t(i)]);
  }

  // Timing marks: events recorded on the compute stream, from a pool that grows during the
  // first steps and is reused after every synchronize().
  struct Mark {
    cudaEvent_t event = nullptr;
  };
  Mark mark() {
    if (next_event_ == events_.size()) {
      cudaEvent_t e = nullptr;
      STRATA_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    const cudaEvent_t e = events_[next_event_++];
    STRATA_CUDA_CHECK(cudaEventRecord(e, stream()));
    return {e};
  }
  static double seconds(const Mark& a, const Mark& b) {
    if (!a.event || !b.event) return 0.0;
    float ms = 0;
    STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, a.event, b.event));
    return double(ms) * 1e-3;
  }

  // ---- kernels --------------------------------------------------------------------------
  void linear_forward(bf16* y, const bf16* x, const bf16* w, const bf16* b, index_t rows, index_t in,
                      index_t out) {
    blas_.linear_forward(y, x, w, b, rows, in, out);
  }
  void linear_backward(bf16* dx, bool accumulate_dx, float* dw, float* db, const bf16* dy, const bf16* x,
                       const bf16* w, index_t rows, index_t in, index_t out) {
    blas_.linear_backward(dx, accumulate_dx, dw, db, dy, x, w, rows, in, out);
  }
  void bias_grad(float* db, const float* dy, index_t rows, index_t cols) const {
    kernels::cuda::bias_grad_f32(db, dy, rows, cols, stream());
  }
  void norm_forward(bool rms, bf16* y, float* mean, float* rstd, const bf16* x, const bf16* w, const bf16* b,
                    index_t rows, index_t C, double eps) const {
    if (rms)
      kernels::cuda::rmsnorm_forward(y, rstd, x, w, rows, C, float(eps), stream());
    else
      kernels::cuda::layernorm_forward(y, mean, rstd, x, w, b, rows, C, float(eps), stream());
  }
  void norm_backward(bool rms, float* dx, float* dw, float* db, const bf16* dy, const bf16* x, const bf16* w,
                     const float* mean, const float* rstd, index_t rows, index_t C) const {
    if (rms)
      kernels::cuda::rmsnorm_backward(dx, dw, dy, x, w, rstd, rows, C, stream());
    else
      kernels::cuda::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, rows, C, stream());
  }
  // The angle table [max_T, HS/2] of (cos, sin) pairs, computed in double on the host.
  void rope_init(float* table, int max_T, index_t HS, double theta) {
    const std::vector<float> t = kernels::cuda::rope_table(max_T, HS, theta);
    STRATA_CHECK(std::int64_t(t.size()) == std::int64_t(max_T) * HS, "rope_table returned ", t.size(),
                 " floats, expected ", std::int64_t(max_T) * HS);
    upload(table, t.data(), t.size() * sizeof(float));
    synchronize();
  }
  // Positions pos .. pos + T - 1: the table from row pos (HS floats per position).
  void rope(bool backward, bf16* x, const float* table, index_t B, index_t Tn, index_t H, index_t HS,
            double /*theta*/, index_t pos) const {
    const float* cs = table + pos * HS;
    if (backward)
      kernels::cuda::rope_backward(x, cs, B, Tn, H, HS, H * HS, stream());
    else
      kernels::cuda::rope_forward(x, cs, B, Tn, H, HS, H * HS, stream());
  }
  void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                         const AttentionDims& d) const {
    kernels::cuda::attention_forward(out, lse, q, k, v, shape(d), stream());
  }
  void attention_backward(bf16* dq, bf16* dk, bf16* dv, float* work, const bf16* dout, const bf16* out,
                          const float* lse, const bf16* q, const bf16* k, const bf16* v,
                          const AttentionDims& d) const {
    kernels::cuda::attention_backward(dq, dk, dv, work, dout, out, lse, q, k, v, shape(d), stream());
  }
  void attention_cached(bf16* out, float* /*work*/, const bf16* q, const bf16* k_cache, const bf16* v_cache,
                        index_t pos, const AttentionDims& d) const {
    kernels::cuda::attention_cached(out, q, k_cache, v_cache, d.T, pos, d.NH, d.NKV, d.HS, d.ld_q, d.ld_kv,
                                    d.causal, stream());
  }
  // Ring attention's block (BlockAttentionDims): merged into (out, lse); the backward adds
  // into fp32 accumulators (Grad). work: D of the backward (block_attention_workspace_floats).
  void block_attention_forward(bf16* out, float* lse, float* /*work*/, const bf16* q, const bf16* k,
                               const bf16* v, const BlockAttentionDims& d) const {
    kernels::cuda::block_attention_forward(out, lse, q, k, v, block_shape(d), stream());
  }
  void block_attention_backward(float* dq, float* dk, float* dv, float* work, const bf16* dout,
                                const bf16* out, const float* lse, const bf16* q, const bf16* k,
                                const bf16* v, const BlockAttentionDims& d) const {
    kernels::cuda::block_attention_backward(dq, dk, dv, work, dout, out, lse, q, k, v, block_shape(d),
                                            stream());
  }
  void gelu_forward(bf16* y, const bf16* x, index_t n) const {
    kernels::cuda::gelu_forward(y, x, n, stream());
  }
  void gelu_backward(bf16* dx, const bf16* dy, const bf16* x, index_t n) const {
    kernels::cuda::gelu_backward(dx, dy, x, n, stream());
  }
  void swiglu_forward(bf16* y, const bf16* gate, const bf16* up, index_t n) const {
    kernels::cuda::swiglu_forward(y, gate, up, n, stream());
  }
  void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dy, const bf16* gate, const bf16* up,
                       index_t n) const {
    kernels::cuda::swiglu_backward(dgate, dup, dy, gate, up, n, stream());
  }
  void embedding_forward(bf16* out, const std::int32_t* tokens, const bf16* wte, index_t N, index_t C,
                         index_t vocab_start, index_t V) const {
    kernels::cuda::embedding_forward(out, tokens, wte, N, C, vocab_start, V, stream());
  }
  void position_embedding_forward(bf16* out, const bf16* wpe, index_t B, index_t Tn, index_t C) const {
    kernels::cuda::position_embedding_forward(out, wpe, B, Tn, C, stream());
  }
  void embedding_backward(float* dwte, const float* dout, const std::int32_t* tokens, index_t N, index_t C,
                          index_t vocab_start, index_t V) const {
    kernels::cuda::embedding_backward(dwte, dout, tokens, N, C, vocab_start, V, stream());
  }
  void position_embedding_backward(float* dwpe, const float* dout, index_t B, index_t Tn, index_t C) const {
    kernels::cuda::position_embedding_backward(dwpe, dout, B, Tn, C, stream());
  }
  void cross_entropy(bf16* logits, float* losses, const std::int32_t* targets, float dloss, bool with_grad,
                     index_t N, index_t V_real, index_t ld) const {
    kernels::cuda::cross_entropy_fused(logits, losses, targets, dloss, with_grad, N, V_real, ld, stream());
  }
  void ce_max(float* row_max, const bf16* logits, index_t N, index_t V_real, index_t ld) const {
    kernels::cuda::vocab_parallel_ce_max(row_max, logits, N, V_real, ld, stream());
  }
  void ce_sumexp(float* sumexp, float* target_logit, const bf16* logits, const float* row_max,
                 const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                 index_t vocab_start) const {
    kernels::cuda::vocab_parallel_ce_sumexp(sumexp, target_logit, logits, row_max, targets, N, V_real, ld,
                                            vocab_start, stream());
  }
  void ce_finish(bf16* logits, float* losses, const float* row_max, const float* sumexp,
                 const float* target_logit, const std::int32_t* targets, float dloss, bool with_grad,
                 index_t N, index_t V_real, index_t ld, index_t vocab_start) const {
    kernels::cuda::vocab_parallel_ce_finish(logits, losses, row_max, sumexp, target_logit, targets, dloss,
                                            with_grad, N, V_real, ld, vocab_start, stream());
  }

  // ---- optimizer ------------------------------------------------------------------------
  struct Span {
    const float* p;
    index_t n;
  };
  // sum of x^2 over the spans: accumulated on the device in fp32, one download.
  double sum_squares(const std::vector<Span>& spans) {
    STRATA_CUDA_CHECK(cudaMemsetAsync(norm_dev_, 0, sizeof(float), stream()));
    for (const Span& s : spans) kernels::cuda::sum_squares_f32(norm_dev_, s.p, s.n, stream());
    download(norm_host_, norm_dev_, sizeof(float));
    synchronize();
    return double(*norm_host_);
  }
  void cast_to_bf16(void* dst, const float* src, index_t n) const {
    kernels::cuda::cast_f32_to_bf16(static_cast<bf16*>(dst), src, n, stream());
  }
  void cast_from_bf16(float* dst, const void* src, index_t n) const {
    kernels::cuda::cast_bf16_to_f32(dst, static_cast<const bf16*>(src), n, stream());
  }
  // The segment table in the kernel's layout (32-byte records, fp32 weight decay).
  void upload_segments(AdamWSegment* device_table, const std::vector<AdamWSegment>& segments) {
    static_assert(sizeof(kernels::cuda::AdamWSegment) == sizeof(AdamWSegment),
                  "segment records differ in size");
    std::vector<kernels::cuda::AdamWSegment> k;
    for (const AdamWSegment& s : segments)
      k.push_back({s.param_offset, s.state_offset, s.numel, float(s.weight_decay)});
    if (k.empty()) return;
    upload(device_table, k.data(), k.size() * sizeof(kernels::cuda::AdamWSegment));
    synchronize();
  }
  // fp32 master weights and moments at the segments' state offsets; the bf16 compute copy at
  // their parameter offsets; gradients at the state offsets (ZeRO-1's shard) or the parameter
  // offsets.
  void adamw(float* master, bf16* params, const float* grads, bool grads_at_state, float* m, float* v,
             const std::vector<AdamWSegment>& segments, const AdamWSegment* device_segments,
             const AdamWStep& s) const {
    if (segments.empty()) return;
    index_t max_segment = 0;
    for (const AdamWSegment& seg : segments) max_segment = std::max(max_segment, seg.numel);
    const kernels::cuda::AdamWStep p{float(s.lr),  float(s.beta1),      float(s.beta2),
                                     float(s.eps), float(s.grad_scale), s.step};
    kernels::cuda::adamw_update(master, params, grads, m, v,
                                reinterpret_cast<const kernels::cuda::AdamWSegment*>(device_segments),
                                int(segments.size()), max_segment, grads_at_state, p, stream());
  }

 private:
  static kernels::cuda::Stream activated(int device) {
    STRATA_CUDA_CHECK(cudaSetDevice(device));
    return kernels::cuda::Stream();
  }
  static kernels::cuda::FlashShape shape(const AttentionDims& d) {
    return {d.B, d.T, d.NH, d.NKV, d.HS, d.ld_q, d.ld_kv, d.causal};
  }
  static kernels::cuda::FlashBlockShape block_shape(const BlockAttentionDims& d) {
    return {d.B,    d.Tq,    d.Tk,   d.NH,   d.NKV,   d.HS,    d.ld_q,  d.ld_kv,
            d.bs_q, d.bs_kv, d.bs_o, d.bs_l, d.q_pos, d.k_pos, d.causal};
  }

  int device_;
  kernels::cuda::Stream stream_;
  kernels::cuda::Blas blas_;
  std::vector<cudaEvent_t> events_;
  std::size_t next_event_ = 0;
  std::vector<bf16> host_bf16_;
  float* norm_dev_ = nullptr;
  float* norm_host_ = nullptr;
};

}  // namespace strata::model
