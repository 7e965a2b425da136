// The CPU backend of the model stage (stage.hpp): the kernels of kernels/cpu (CBLAS GEMMs,
// Kokkos/loop element-wise kernels) behind the interface every backend gives the layer code.
// Everything is one scalar type T (fp32 for training, fp64 for the finite-difference tests);
// memory is host memory, so uploads and downloads are copies and synchronize() does nothing.
// The interface is described in backend.hpp.
#pragma once
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "strata/core/error.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/kernels/cpu/activations.hpp"
#include "strata/kernels/cpu/adamw.hpp"
#include "strata/kernels/cpu/attention.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/embedding.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/norm.hpp"
#include "strata/kernels/cpu/ring_attention.hpp"
#include "strata/kernels/cpu/rope.hpp"
#include "strata/model/backend.hpp"

namespace strata::model {

template <class T>
class CpuBackend {
 public:
  using Act = T;
  using Grad = T;
  using Stat = T;
  using Host = T;
  using index_t = std::int64_t;

  static BackendSpec spec() { return cpu_backend_spec(dtype_of<T>()); }
  const char* name() const { return dtype_of<T>() == DType::f32 ? "cpu fp32" : "cpu fp64"; }

  // The device for the start-up log; the CPU has no accelerator name, no stream.
  std::string describe() const {
    return std::string("CPU backend (") + name() + ", " + kernels::cpu::blas_name() + ")";
  }
  std::string device_name() const { return ""; }
  void* stream_handle() const { return nullptr; }
  void activate() const {}  // the CUDA backend makes its device current

  // ---- memory ---------------------------------------------------------------------------
  void allocate(MemoryPlan& plan) const { plan.allocate(); }
  void allocate_host(MemoryPlan& plan) const { plan.allocate(); }  // staging (pinned on GPUs)
  void upload(void* dst, const void* host, std::size_t bytes) const { std::memcpy(dst, host, bytes); }
  void download(void* host, const void* src, std::size_t bytes) const { std::memcpy(host, src, bytes); }
  void synchronize() const {}
  template <class U>
  void fill(U* x, U value, index_t n) const {
    kernels::cpu::fill(x, value, n);
  }
  template <class U>
  void copy(U* y, const U* x, index_t n) const {
    kernels::cpu::copy(y, x, n);
  }
  // y[r ld_y + j] = x[r ld_x + j] for r < rows, j < cols: a block of rows between strided
  // buffers (Ulysses context parallelism packs heads for its all-to-all with it).
  template <class U>
  void copy_2d(U* y, index_t ld_y, const U* x, index_t ld_x, index_t rows, index_t cols) const {
    for (index_t r = 0; r < rows; ++r) std::memcpy(y + r * ld_y, x + r * ld_x, std::size_t(cols) * sizeof(U));
  }
  void accumulate(T* y, const T* x, index_t n) const { kernels::cpu::accumulate(y, x, n); }
  void add(T* y, const T* a, const T* b, index_t n) const { kernels::cpu::add(y, a, b, n); }
  void add_bias(T* y, const T* bias, index_t rows, index_t cols) const {
    kernels::cpu::add_bias(y, bias, rows, cols);
  }
  // Act and Grad are the same type here: the cast is never needed (the stage does not call it).
  void cast_grad_to_act(T* y, const T* x, index_t n) const { kernels::cpu::copy(y, x, n); }
  // Backend values from host values and back, converting the type where they differ (the CUDA
  // backend: fp32 <-> bf16); here a copy. Not for the step loop (the CUDA backend stages).
  void upload_cast(T* dst, const T* host, index_t n) const { kernels::cpu::copy(dst, host, n); }
  void download_cast(T* host, const T* src, index_t n) const { kernels::cpu::copy(host, src, n); }

  // Timing marks: host time (the CUDA backend records events on its stream).
  using Mark = std::chrono::steady_clock::time_point;
  Mark mark() const { return std::chrono::steady_clock::now(); }
  static double seconds(const Mark& a, const Mark& b) { return std::chrono::duration<double>(b - a).count(); }

  // ---- kernels --------------------------------------------------------------------------
  void linear_forward(T* y, const T* x, const T* w, const T* b, index_t rows, index_t in, index_t out) const {
    kernels::cpu::linear_forward(y, x, w, b, rows, in, out);
  }
  void linear_backward(T* dx, bool accumulate_dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                       index_t rows, index_t in, index_t out) const {
    kernels::cpu::linear_backward(dx, dw, db, dy, x, w, rows, in, out, accumulate_dx);
  }
  // db += sum over rows of dy
  void bias_grad(T* db, const T* dy, index_t rows, index_t cols) const {
    kernels::cpu::linear_backward(static_cast<T*>(nullptr), static_cast<T*>(nullptr), db, dy,
                                  static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), rows, 0,
                                  cols);
  }
  void norm_forward(bool rms, T* y, T* mean, T* rstd, const T* x, const T* w, const T* b, index_t rows,
                    index_t C, double eps) const {
    if (rms)
      kernels::cpu::rmsnorm_forward(y, rstd, x, w, rows, C, T(eps));
    else
      kernels::cpu::layernorm_forward(y, mean, rstd, x, w, b, rows, C, T(eps));
  }
  // dx, dw, db +=
  void norm_backward(bool rms, T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const T* mean,
                     const T* rstd, index_t rows, index_t C) const {
    if (rms)
      kernels::cpu::rmsnorm_backward(dx, dw, dy, x, w, rstd, rows, C);
    else
      kernels::cpu::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, rows, C);
  }
  void rope_init(T*, int, index_t, double) const {}  // the CPU computes the angles on the fly
  // x [B, T, H, HS] rotated in place at positions pos .. pos + T - 1 (backward: the inverse).
  void rope(bool backward, T* x, const T* /*table*/, index_t B, index_t Tn, index_t H, index_t HS,
            double theta, index_t pos) const {
    if (backward)
      kernels::cpu::rope_backward(x, B, Tn, H, HS, theta, pos);
    else
      kernels::cpu::rope_forward(x, B, Tn, H, HS, theta, pos);
  }
  void attention_forward(T* out, T* saved, const T* q, const T* k, const T* v, const AttentionDims& d) const {
    kernels::cpu::attention_forward(out, saved, q, k, v, shape(d));
  }
  // dq, dk, dv =
  void attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* /*out*/, const T* saved,
                          const T* q, const T* k, const T* v, const AttentionDims& d) const {
    kernels::cpu::fill(dq, T(0), d.B * d.T * d.ld_q);
    kernels::cpu::fill(dk, T(0), d.B * d.T * d.ld_kv);
    kernels::cpu::fill(dv, T(0), d.B * d.T * d.ld_kv);
    kernels::cpu::attention_backward(dq, dk, dv, work, dout, saved, q, k, v, shape(d));
  }
  // Tq query rows at positions pos .. pos + Tq - 1 over the first pos + Tq cached keys (d.B = 1, d.T = Tq).
  void attention_cached(T* out, T* work, const T* q, const T* k_cache, const T* v_cache, index_t pos,
                        const AttentionDims& d) const {
    const kernels::cpu::CachedAttentionShape s{d.T, pos, d.NH, d.NKV, d.HS, d.ld_q, d.ld_kv, d.causal};
    kernels::cpu::attention_forward_cached(out, work, q, k_cache, v_cache, s);
  }
  // Ring attention's block (BlockAttentionDims): merged into (out, lse); backward +=.
  void block_attention_forward(T* out, T* lse, T* work, const T* q, const T* k, const T* v,
                               const BlockAttentionDims& d) const {
    kernels::cpu::block_attention_forward(out, lse, work, q, k, v, block_shape(d));
  }
  void block_attention_backward(T* dq, T* dk, T* dv, T* work, const T* dout, const T* out, const T* lse,
                                const T* q, const T* k, const T* v, const BlockAttentionDims& d) const {
    kernels::cpu::block_attention_backward(dq, dk, dv, work, dout, out, lse, q, k, v, block_shape(d));
  }
  void gelu_forward(T* y, const T* x, index_t n) const { kernels::cpu::gelu_forward(y, x, n); }
  void gelu_backward(T* dx, const T* dy, const T* x, index_t n) const {  // dx =
    kernels::cpu::gelu_backward(dx, dy, x, n, /*accumulate=*/false);
  }
  void swiglu_forward(T* y, const T* gate, const T* up, index_t n) const {
    kernels::cpu::swiglu_forward(y, gate, up, n);
  }
  void swiglu_backward(T* dgate, T* dup, const T* dy, const T* gate, const T* up, index_t n) const {  // =
    kernels::cpu::swiglu_backward(dgate, dup, dy, gate, up, n, /*accumulate=*/false);
  }
  void embedding_forward(T* out, const std::int32_t* tokens, const T* wte, index_t N, index_t C,
                         index_t vocab_start, index_t V) const {
    kernels::cpu::embedding_forward(out, tokens, wte, N, C, vocab_start, V);
  }
  void position_embedding_forward(T* out, const T* wpe, index_t B, index_t Tn, index_t C) const {
    kernels::cpu::position_embedding_forward(out, wpe, B, Tn, C);
  }
  void embedding_backward(T* dwte, const T* dout, const std::int32_t* tokens, index_t N, index_t C,
                          index_t vocab_start, index_t V) const {
    kernels::cpu::embedding_backward(dwte, dout, tokens, N, C, vocab_start, V);
  }
  void position_embedding_backward(T* dwpe, const T* dout, index_t B, index_t Tn, index_t C) const {
    kernels::cpu::position_embedding_backward(dwpe, dout, B, Tn, C);
  }
  // One rank holds the whole vocabulary: loss, and (with_grad) logits := dlogits * dloss.
  void cross_entropy(T* logits, T* losses, const std::int32_t* targets, T dloss, bool with_grad, index_t N,
                     index_t V_real, index_t ld) const {
    if (with_grad)
      kernels::cpu::cross_entropy_fused(logits, losses, targets, dloss, N, V_real, ld);
    else
      kernels::cpu::cross_entropy_forward(losses, logits, targets, N, V_real, ld);
  }
  void ce_max(T* row_max, const T* logits, index_t N, index_t V_real, index_t ld) const {
    kernels::cpu::vocab_parallel_ce_max(row_max, logits, N, V_real, ld);
  }
  void ce_sumexp(T* sumexp, T* target_logit, const T* logits, const T* row_max, const std::int32_t* targets,
                 index_t N, index_t V_real, index_t ld, index_t vocab_start) const {
    kernels::cpu::vocab_parallel_ce_sumexp(sumexp, target_logit, logits, row_max, targets, N, V_real, ld,
                                           vocab_start);
  }
  void ce_finish(T* logits, T* losses, const T* row_max, const T* sumexp, const T* target_logit,
                 const std::int32_t* targets, T dloss, bool with_grad, index_t N, index_t V_real, index_t ld,
                 index_t vocab_start) const {
    kernels::cpu::vocab_parallel_ce_finish(logits, losses, row_max, sumexp, target_logit, targets, dloss,
                                           with_grad, N, V_real, ld, vocab_start);
  }

  // ---- optimizer ------------------------------------------------------------------------
  // bf16 gradient reduction is a GPU feature (config validation refuses it on the CPU).
  [[noreturn]] void cast_to_bf16(void*, const T*, index_t) const { no_bf16(); }
  [[noreturn]] void cast_from_bf16(T*, const void*, index_t) const { no_bf16(); }
  // The AdamW segment table lives on the host here (the optimizer passes its own vector).
  void upload_segments(AdamWSegment*, const std::vector<AdamWSegment>&) const {}
  struct Span {
    const T* p;
    index_t n;
  };
  // sum of x^2 over the spans, in double, in span order.
  double sum_squares(const std::vector<Span>& spans) const {
    double sq = 0;
    for (const Span& s : spans) sq += kernels::cpu::sum_squares(s.p, s.n);
    return sq;
  }
  // AdamW over the segments. The parameters are their own master weights (master == params:
  // the state of a segment is read at param_offset); grads at state_offset when
  // grads_at_state (ZeRO-1's reduced shard), else at param_offset.
  void adamw(T* /*master*/, T* params, const T* grads, bool grads_at_state, T* m, T* v,
             const std::vector<AdamWSegment>& segments, const AdamWSegment* /*device_segments*/,
             const AdamWStep& s) const {
    for (const AdamWSegment& seg : segments) {
      const kernels::cpu::AdamWParams p{s.lr,         s.beta1, s.beta2, s.eps, seg.weight_decay,
                                        s.grad_scale, s.step};
      const T* g = grads + (grads_at_state ? seg.state_offset : seg.param_offset);
      kernels::cpu::adamw_update(params + seg.param_offset, g, m + seg.state_offset, v + seg.state_offset,
                                 seg.numel, p);
    }
  }

 private:
  [[noreturn]] static void no_bf16() {
    throw make_error("parallel.grad_reduce_dtype: bf16 needs hardware.device: cuda (the CPU reduces fp32)");
  }
  static kernels::cpu::BlockAttentionShape block_shape(const BlockAttentionDims& d) {
    return {d.B,    d.Tq,    d.Tk,   d.NH,   d.NKV,   d.HS,    d.ld_q,  d.ld_kv,
            d.bs_q, d.bs_kv, d.bs_o, d.bs_l, d.q_pos, d.k_pos, d.causal};
  }
  static kernels::cpu::AttentionShape shape(const AttentionDims& d) {
    return {d.B, d.T, d.NH, d.NKV, d.HS, d.ld_q, d.ld_kv, d.causal};
  }
};

}  // namespace strata::model
