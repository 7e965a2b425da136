// Fused scaled dot-product attention with an online softmax (flash-attention style: Dao et
// al. 2022, FlashAttention-2 2023): the T x T score matrix is never stored. Causal or
// bidirectional, grouped-query heads (query head h reads KV head h / (NH / NKV)), head sizes
// 64 and 128, bf16 in and out, fp32 softmax statistics and accumulators, tensor-core
// (mma/wmma bf16) products.
//   q: rows (b, t) of NH*HS with row stride ld_q; k, v: rows of NKV*HS with stride ld_kv;
//   out: [B, T, NH, HS] contiguous.
//   forward   S = q k^T / sqrt(HS) (masked to s <= t when causal), out = softmax(S) v,
//             lse[b, h, t] = log sum_s exp(S[t, s])  (saved for the backward)
//   backward  D = rowsum(dout * out); P = exp(S - lse); dv = P^T dout; dP = dout v^T;
//             dS = P (dP - D); dq = dS k / sqrt(HS); dk = dS^T q / sqrt(HS)   (all =)
// The backward needs fp32 work space (attention_workspace_floats) for the dq accumulation
// and the GQA group sums of dk/dv.
#pragma once
#include "strata/kernels/cuda/common.hpp"

namespace strata::kernels::cuda {

struct FlashShape {
  index_t B, T, NH, NKV, HS;
  index_t ld_q, ld_kv;
  bool causal;
};

// Throws strata::Error unless HS is 64 or 128, NH % NKV == 0.
void check_flash_shape(const FlashShape& s);
index_t attention_workspace_floats(const FlashShape& s);

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       const FlashShape& s, cudaStream_t stream);
// dq/dk/dv use the strides of q/k/v (ld_q, ld_kv). workspace: attention_workspace_floats(s) floats.
void attention_backward(bf16* dq, bf16* dk, bf16* dv, float* workspace, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, const FlashShape& s,
                        cudaStream_t stream);

// One block of ring attention (context parallelism), with the semantics of the CPU kernel
// kernels/cpu/ring_attention.hpp (its header states the math and layouts): Tq query rows at
// sequence positions q_pos.. against Tk key rows at k_pos.., causal by position, batch
// strides bs_*; out rows of NH HS, lse rows of NH. The same kernels as the whole-sequence
// attention above (which is the block q_pos = k_pos = 0, Tq = Tk = T from a fresh state):
//   forward   merges into the running (out bf16, lse fp32): each row continues from
//             m = lse, l = 1, O = out; a row that sees no key of the block, and a block no row
//             sees, leave (out, lse) exactly as they were.
//   backward  from the final out and lse, ADDS into fp32 dq (q's strides), dk, dv (k's
//             strides): the ring keeps its gradient accumulators in fp32, so that the sum
//             over the blocks is rounded to bf16 once.
// workspace: block_attention_workspace_floats(B, Tq, NH) floats (D = rowsum(dout * out)).
struct FlashBlockShape {
  index_t B, Tq, Tk, NH, NKV, HS;
  index_t ld_q, ld_kv;
  index_t bs_q, bs_kv, bs_o, bs_l;
  index_t q_pos, k_pos;
  bool causal;
};
void check_flash_block_shape(const FlashBlockShape& s);
index_t block_attention_workspace_floats(index_t B, index_t Tq, index_t NH);
void block_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                             const FlashBlockShape& s, cudaStream_t stream);
void block_attention_backward(float* dq, float* dk, float* dv, float* workspace, const bf16* dout,
                              const bf16* out, const float* lse, const bf16* q, const bf16* k, const bf16* v,
                              const FlashBlockShape& s, cudaStream_t stream);

// FLOPs of the forward (4 B NH T^2 HS, halved when causal) for benchmarks; backward = 2.5x.
double attention_forward_flops(const FlashShape& s);

// Attention over a key/value cache (the decoder, one sequence): Tq query rows at positions
// pos .. pos + Tq - 1 attend over the first pos + Tq cached keys (causal: row i over keys
// 0 .. pos + i). q [Tq, NH, HS] (row stride ld_q), caches [>= pos + Tq, NKV, HS] (row stride
// ld_kv), out [Tq, NH, HS] contiguous. One warp per (row, head), each lane holding HS / 32 of the
// head's dimensions: scores by warp reductions, an online softmax in fp32 (Milakov &
// Gimelshein 2018), no work space. HS must be a multiple of 32 (64 and 128 are compiled in).
// Reference: kernels/cpu attention_forward_cached (tests/cuda/test_attention.cpp).
void attention_cached(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, index_t Tq,
                      index_t pos, index_t NH, index_t NKV, index_t HS, index_t ld_q, index_t ld_kv,
                      bool causal, cudaStream_t stream);

}  // namespace strata::kernels::cuda
