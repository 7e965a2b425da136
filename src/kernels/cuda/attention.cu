// Fused scaled dot-product attention on tensor cores (interface and math:
// include/strata/kernels/cuda/attention.hpp; the online-softmax formulas and the block
// ranges are the host-testable functions of include/strata/kernels/cuda/flash_math.hpp).
//
// Glossary: B batch, T sequence, NH query heads, NKV key/value heads (GQA group = NH / NKV,
// query head h reads kv head h / group), HS head size (64 or 128). Tiles: 64 query rows x 64
// keys, 128 threads = 4 warps; a warp owns 16 rows of a tile. Products are nvcuda::wmma
// bf16 16x16x16 fragments with fp32 accumulators (sm_80 and later); scores, statistics and
// accumulators are fp32, P and dS are rounded to bf16 as the operands of the next product.
//
// Forward (FlashAttention-2, Dao 2023, Algorithm 1): one block per (query block, h, b).
//   Q tile -> registers (HS/16 matrix_a fragments per warp). For each visible key block j:
//     K_j, V_j -> shared memory;  S = Q K_j^T (fp32, shared);  per row (two lanes per row,
//     alternate columns): s2 = S scale log2(e) or -inf where masked, m_new = max(m, max s2),
//     alpha = 2^(m - m_new), p = 2^(s2 - m_new) -> P (bf16, shared), l = alpha l + sum p;
//     O = alpha O + P V_j with O in wmma accumulator fragments (registers). A fragment's
//     element positions are unspecified, so each thread learns the row of each of its
//     elements once, by loading the matrix (r, c) = r into a fragment, and reads alpha of that
//     row from shared memory.
//   out = O / l (bf16), lse = (m + log2 l) ln 2.
//   Causal: key blocks after the diagonal block are skipped; query blocks run heaviest first.
//   Shared memory: Q, K, V [64][HS+8] bf16, S [64][68] fp32, P [64][72] bf16, 64 row factors,
//   the 16x16 row-index matrix (78.25 KiB at HS = 128, two blocks per SM); the +8/+4 pads shift
//   rows across banks and keep every 16x16 fragment 32-byte aligned, as wmma requires.
//   Each warp reads all of K and V from shared memory for its 16 rows (16 flops per byte of
//   shared memory), which bounds this design to roughly half of the H100's mma peak (the
//   H100's 128 bytes per clock of shared memory feed 2048 of its ~4096 bf16 flops per clock
//   per SM); not yet measured.
//
// Backward (FlashAttention-2, Algorithm 2): a pre-pass computes D = rowsum(dout * out) per
// (b, h, t) into the work space and zeroes the fp32 dq accumulator. Then one block per (key
// block, kv head, b): K_j, V_j stay in shared memory; dK_j, dV_j accumulate in wmma fragments
// (registers: warp w owns keys 16w..16w+15) over the group's query heads and every query
// block i that sees key block j (causal: i >= j):
//   Q_i, dO_i -> shared;  S^T = K_j Q_i^T,  dP^T = V_j dO_i^T  (each warp its 16 keys x 64
//   queries, fp32 in shared); elementwise P = 2^(s2 - lse log2 e) (0 where masked),
//   dS = P (dP - D)  -> P^T, dS^T bf16 in shared;
//   dV_j += P^T dO_i,  dK_j += dS^T Q_i;
//   dQ_i += scale dS K_j: each warp computes 16 query rows x HS in 16x16 pieces, stages each
//   in a per-warp scratch and adds it to the fp32 dq work space with atomicAdd (other key
//   blocks add to the same rows).
// Finally dK = scale dK_j, dV = dV_j are written in bf16 (strided rows, ld_kv), and a cast
// kernel writes dq (bf16, ld_q) from the work space. All three outputs are "=": dk/dv of a
// kv head sum its group's query heads inside one block, so no GQA accumulation crosses blocks.
//   Shared memory: K, V, Q, dO [64][HS+8] bf16, S^T, dP^T [64][68] fp32, P^T, dS^T [64][72]
//   bf16, lse and D [64] fp32, 4 x 16x16 fp32 scratch (124.5 KiB at HS = 128).
// Work space: dq [B, T, NH, HS] fp32, then D [B, NH, T] fp32.
//
// Ring-attention blocks (context parallelism) run the same two kernels on a Problem with
// position offsets (q_pos, k_pos), Tq != Tk and batch strides; the whole-sequence attention is
// the Problem q_pos = k_pos = 0, Tq = Tk = T. The causal tile ranges come from
// flash::BlockSpan. Forward with `merge`: each row starts from the running (out, lse) as the
// state m2 = lse log2(e), l = 1, O = out (loaded through the warp's S rows into the
// accumulator fragments); a row that sees no key of the block writes nothing, so (out, lse)
// stay bit for bit, and a query tile that sees no key block returns at once. Backward with
// `accumulate`: dq goes straight into the caller's fp32 accumulator (atomics, q's strides), dk
// and dv are added into fp32 accumulators by the block that owns those rows; the work space is
// D [B, NH, Tq] only.
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "strata/kernels/cuda/attention.hpp"
#include "strata/kernels/cuda/flash_math.hpp"

namespace strata::kernels::cuda {

namespace {

namespace wmma = nvcuda::wmma;
using flash::kBlockM;
using flash::kBlockN;
constexpr int kThreads = 32 * flash::kWarps;
static_assert(kBlockM == 16 * flash::kWarps && kBlockN == 64,
              "a warp owns 16 rows; the softmax loop assumes 64 keys");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragAT = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragBT = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Shared-memory layout (byte offsets) of both kernels for head size HS.
template <int HS>
struct Layout {
  static constexpr int ldh = HS + 8;       // bf16 [64][HS] tiles (Q, K, V, dO)
  static constexpr int lds = kBlockN + 4;  // fp32 [64][64] scores (S, dP)
  static constexpr int ldp = kBlockN + 8;  // bf16 [64][64] probabilities (P, dS)
  static constexpr int tile_h = 64 * ldh * 2, tile_s = 64 * lds * 4, tile_p = 64 * ldp * 2;
  // forward: Q K V S P, the per-row factors (64 fp32) and the 16x16 row-index matrix
  static constexpr int f_q = 0, f_k = f_q + tile_h, f_v = f_k + tile_h, f_s = f_v + tile_h,
                       f_p = f_s + tile_s, f_row = f_p + tile_p, f_rowid = f_row + 64 * 4,
                       f_bytes = f_rowid + 256 * 4;
  // backward: K V Q dO S^T dP^T P^T dS^T lse D scratch
  static constexpr int b_k = 0, b_v = b_k + tile_h, b_q = b_v + tile_h, b_do = b_q + tile_h,
                       b_s = b_do + tile_h, b_dp = b_s + tile_s, b_p = b_dp + tile_s, b_ds = b_p + tile_p,
                       b_lse = b_ds + tile_p, b_d = b_lse + 64 * 4, b_scratch = b_d + 64 * 4,
                       b_bytes = b_scratch + flash::kWarps * 256 * 4;
  static_assert(tile_h % 32 == 0 && tile_s % 32 == 0 && tile_p % 32 == 0,
                "every region starts 32-byte aligned (wmma)");
  // wmma: ldm a multiple of 16 bytes; every fragment pointer 32-byte aligned. Fragments start
  // at rows that are multiples of 16 and columns that are multiples of 16 of a region.
  static_assert((ldh * 2) % 16 == 0 && (lds * 4) % 16 == 0 && (ldp * 2) % 16 == 0, "wmma ldm");
  static_assert((16 * ldh * 2) % 32 == 0 && (16 * lds * 4) % 32 == 0 && (16 * ldp * 2) % 32 == 0 &&
                    (16 * 2) % 32 == 0 && (16 * 4) % 32 == 0,
                "16-row and 16-column fragment offsets keep 32-byte alignment");
  static_assert((f_row % 32) == 0 && (f_rowid % 32) == 0 && (b_scratch % 32) == 0 && (256 * 4) % 32 == 0,
                "row-index matrix and per-warp scratch are 32-byte aligned");
  // Dynamic shared memory per block (opt-in): sm_80 allows 163 KiB, sm_90 227 KiB.
  static_assert(f_bytes <= 163 * 1024 && b_bytes <= 163 * 1024, "fits sm_80's per-block shared memory");
};

// What both kernels compute, in the form both entry points reduce to: Tq query rows at
// positions q_pos.. against Tk key rows at k_pos.. (BlockSpan), with the strides of every
// operand. The whole-sequence attention is Tq = Tk = T, q_pos = k_pos = 0, a fresh state and
// "=" gradients; a ring-attention block merges into (out, lse) and adds its gradients.
struct Problem {
  flash::BlockSpan span;
  index_t B, NH, NKV;
  index_t ld_q, ld_kv, ld_o;    // row strides of q, of k/v (and dk/dv), of out/dout
  index_t bs_q, bs_kv, bs_o;    // batch strides
  index_t lse_b, lse_t, lse_h;  // lse (and the saved lse of the backward) of (b, t, h)
  index_t dq_ld, dq_bs;         // the fp32 dq accumulator's row and batch strides
  bool merge;                   // forward: start each row from (out, lse), write only rows that saw a key
  bool accumulate;              // backward: dk, dv += into fp32 (else = in bf16)
};

// Copies rows [0, 64) of a strided bf16 matrix (HS columns) into shared memory, 16 bytes at
// a time; rows >= rows_valid (past T) become zeros.
template <int HS>
__device__ inline void load_tile(bf16* dst, int ld_dst, const bf16* src, index_t ld_src, index_t rows_valid) {
  constexpr int kChunks = HS / 8;
  for (int i = threadIdx.x; i < 64 * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < rows_valid) val = *reinterpret_cast<const uint4*>(src + r * ld_src + c);
    *reinterpret_cast<uint4*>(dst + r * ld_dst + c) = val;
  }
}

template <int HS>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, Problem p,
                         float scale_log2) {
  using L = Layout<HS>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem + L::f_q);
  bf16* sK = reinterpret_cast<bf16*>(smem + L::f_k);
  bf16* sV = reinterpret_cast<bf16*>(smem + L::f_v);
  float* sS = reinterpret_cast<float*>(smem + L::f_s);
  bf16* sP = reinterpret_cast<bf16*>(smem + L::f_p);
  float* sRow = reinterpret_cast<float*>(smem + L::f_row);      // per-row factor (alpha, then 1/l)
  float* sRowId = reinterpret_cast<float*>(smem + L::f_rowid);  // [16][16], element (r, c) = r

  const flash::BlockSpan& sp = p.span;
  const index_t Tq = sp.Tq, Tk = sp.Tk;
  const int n_qb = flash::num_blocks(Tq, kBlockM);
  const int q_block = sp.causal ? n_qb - 1 - int(blockIdx.x) : int(blockIdx.x);  // causal: longest first
  const index_t h = blockIdx.y, b = blockIdx.z, kvh = h / (p.NH / p.NKV);
  const index_t q0 = index_t(q_block) * kBlockM;
  const int n_kv = flash::kv_blocks_for_q_block(sp, q_block);
  if (p.merge && n_kv == 0) return;  // no row of this block sees a key: (out, lse) stay as they are
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = lane >> 1, half = lane & 1;  // this lane's row of the warp's 16, and its column parity
  const index_t t = q0 + warp * 16 + row;      // its query row
  float* lse_at = lse + b * p.lse_b + h * p.lse_h;
  bf16* out_at = out + b * p.bs_o + h * HS;

  load_tile<HS>(sQ, L::ldh, q + b * p.bs_q + q0 * p.ld_q + h * HS, p.ld_q, Tq - q0);
  for (int i = threadIdx.x; i < 256; i += kThreads) sRowId[i] = float(i / 16);
  __syncthreads();
  FragA qf[HS / 16];
#pragma unroll
  for (int kk = 0; kk < HS / 16; ++kk)
    wmma::load_matrix_sync(qf[kk], sQ + (warp * 16) * L::ldh + kk * 16, L::ldh);
  // The O accumulator stays in registers. A wmma fragment's element-to-position mapping is
  // unspecified but the same for every fragment of a type, so loading the matrix (r, c) = r
  // tells each thread the row of each of its elements (row_of.x[i]): that is what the
  // per-row rescales of O need.
  FragC row_of;
  wmma::load_matrix_sync(row_of, sRowId, 16, wmma::mem_row_major);
  float* w_row = sRow + warp * 16;             // this warp's 16 row factors
  float* scratch = sS + (warp * 16) * L::lds;  // this warp's S rows, a 16x16 staging area between blocks
  FragC o_acc[HS / 16];
  flash::RowState st = flash::row_state_init();
  if (p.merge) {
    // Continue from the running (out, lse): l = 1, O = out (0 for a row without keys so far).
    const float l0 = t < Tq ? lse_at[t * p.lse_t] : flash::neg_inf();
    st = flash::row_state_from_lse(l0);
    if (half == 0) w_row[row] = l0 == flash::neg_inf() ? 0.0f : 1.0f;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < HS / 16; ++n) {
      for (int e = lane; e < 256; e += 32) {
        const index_t tt = q0 + warp * 16 + e / 16;
        scratch[(e / 16) * L::lds + e % 16] =
            tt < Tq && w_row[e / 16] != 0.0f ? __bfloat162float(out_at[tt * p.ld_o + n * 16 + e % 16]) : 0.0f;
      }
      __syncwarp();
      wmma::load_matrix_sync(o_acc[n], scratch, L::lds, wmma::mem_row_major);
      __syncwarp();
    }
  } else {
#pragma unroll
    for (int n = 0; n < HS / 16; ++n) wmma::fill_fragment(o_acc[n], 0.0f);
  }

  bool seen = false;  // whether this row saw a key of this call's blocks
  const float* s_row = sS + (warp * 16 + row) * L::lds;
  bf16* p_row = sP + (warp * 16 + row) * L::ldp;
  for (int j = 0; j < n_kv; ++j) {
    const index_t k0 = index_t(j) * kBlockN;
    __syncthreads();  // every warp is done with the previous K, V (and its S rows)
    load_tile<HS>(sK, L::ldh, k + b * p.bs_kv + k0 * p.ld_kv + kvh * HS, p.ld_kv, Tk - k0);
    load_tile<HS>(sV, L::ldh, v + b * p.bs_kv + k0 * p.ld_kv + kvh * HS, p.ld_kv, Tk - k0);
    __syncthreads();

    // S_w[16, 64] = Q_w K^T: K stored [key][d] is K^T in column-major order.
#pragma unroll
    for (int n = 0; n < kBlockN / 16; ++n) {
      FragC acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) {
        FragBT kf;
        wmma::load_matrix_sync(kf, sK + (n * 16) * L::ldh + kk * 16, L::ldh);
        wmma::mma_sync(acc, qf[kk], kf, acc);
      }
      wmma::store_matrix_sync(sS + (warp * 16) * L::lds + n * 16, acc, L::lds, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of this lane's half of its row (columns c = 2i + half).
    float mx = flash::neg_inf();
#pragma unroll 8
    for (int i = 0; i < kBlockN / 2; ++i) {
      const int c = 2 * i + half;
      if (flash::key_visible(sp, t, k0 + c)) mx = fmaxf(mx, s_row[c] * scale_log2);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // both lanes of the row agree
    seen |= mx != flash::neg_inf();
    const float alpha = flash::row_begin_block(st, mx);
    float sum = 0.0f;
#pragma unroll 8
    for (int i = 0; i < kBlockN / 2; ++i) {
      const int c = 2 * i + half;
      const float pr =
          flash::key_visible(sp, t, k0 + c) ? flash::exp2_shifted(s_row[c] * scale_log2, st.m2) : 0.0f;
      p_row[c] = __float2bfloat16(pr);
      sum += pr;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    flash::row_add_sum(st, sum);
    if (half == 0) w_row[row] = alpha;
    __syncwarp();

    // O_w = alpha O_w + P_w V
    FragA pf[kBlockN / 16];
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk)
      wmma::load_matrix_sync(pf[kk], sP + (warp * 16) * L::ldp + kk * 16, L::ldp);
#pragma unroll
    for (int n = 0; n < HS / 16; ++n) {
#pragma unroll
      for (int i = 0; i < o_acc[n].num_elements; ++i) o_acc[n].x[i] *= w_row[int(row_of.x[i])];
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        FragB vf;
        wmma::load_matrix_sync(vf, sV + (kk * 16) * L::ldh + n * 16, L::ldh);
        wmma::mma_sync(o_acc[n], pf[kk], vf, o_acc[n]);
      }
    }
  }

  // out = O / l, through the warp's 16x16 scratch (its S rows, no longer needed). Merging, a row
  // that saw no key of these blocks is not written (its factor -1 marks it): (out, lse) stay
  // exactly as they were.
  const bool write = !p.merge || seen;
  __syncwarp();  // every lane is done reading w_row (alpha) and its S row
  if (half == 0) w_row[row] = write ? flash::row_inv_sum(st) : -1.0f;
  __syncwarp();
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
#pragma unroll
    for (int i = 0; i < o_acc[n].num_elements; ++i) o_acc[n].x[i] *= w_row[int(row_of.x[i])];
    wmma::store_matrix_sync(scratch, o_acc[n], 16, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) {
      const index_t tt = q0 + warp * 16 + e / 16;
      if (tt < Tq && w_row[e / 16] >= 0.0f)
        out_at[tt * p.ld_o + n * 16 + e % 16] = __float2bfloat16(scratch[e]);
    }
    __syncwarp();
  }
  if (t < Tq && half == 0 && write) lse_at[t * p.lse_t] = flash::row_lse(st);
}

// D[b, h, t] = sum_d dout[b, t, h, d] out[b, t, h, d] (rows of stride ld_o, batches of bs_o;
// D contiguous [B, NH, Tq]): one warp per (b, t, h) row r = (b Tq + t) NH + h, warps striding
// over the rows.
__global__ void flash_backward_dot_kernel(float* D, const bf16* dout, const bf16* out, index_t B, index_t Tq,
                                          index_t NH, index_t HS, index_t ld_o, index_t bs_o) {
  const index_t rows = B * Tq * NH;
  const index_t warps = index_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  // r is uniform across a warp, so whole warps run the loop (and its shuffles) together.
  for (index_t r = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    const index_t h = r % NH, bt = r / NH;
    const index_t b = bt / Tq, t = bt % Tq;
    const index_t at = b * bs_o + t * ld_o + h * HS;
    float acc = 0.0f;
    for (index_t d = lane; d < HS; d += 32)
      acc += __bfloat162float(dout[at + d]) * __bfloat162float(out[at + d]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) D[(b * NH + h) * Tq + t] = acc;
  }
}

// Writes f * (a warp's 16x16 accumulator) to rows key0.. (< rows) of dst (row stride ld),
// columns col0..col0+15, through the warp's fp32 scratch: "=" in bf16, or "+=" in fp32.
__device__ inline void store_fragment(float* scratch, const FragC& frag, bf16* dst, float* dst_acc,
                                      index_t key0, index_t rows, index_t ld, index_t col0, float f) {
  const int lane = threadIdx.x % 32;
  wmma::store_matrix_sync(scratch, frag, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 256; e += 32) {
    const index_t key = key0 + e / 16;
    if (key >= rows) continue;
    const index_t at = key * ld + col0 + e % 16;
    if (dst_acc)
      dst_acc[at] += f * scratch[e];
    else
      dst[at] = __float2bfloat16(f * scratch[e]);
  }
  __syncwarp();
}

// dk/dv: bf16 "=" (dk, dv) or fp32 "+=" (dk_acc, dv_acc), as p.accumulate says.
template <int HS>
__global__ void __launch_bounds__(kThreads)
    flash_backward_kernel(bf16* dk, bf16* dv, float* dk_acc, float* dv_acc, float* dq_acc, const float* D,
                          const bf16* dout, const float* lse, const bf16* q, const bf16* k, const bf16* v,
                          Problem p, float scale, float scale_log2) {
  using L = Layout<HS>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sK = reinterpret_cast<bf16*>(smem + L::b_k);
  bf16* sV = reinterpret_cast<bf16*>(smem + L::b_v);
  bf16* sQ = reinterpret_cast<bf16*>(smem + L::b_q);
  bf16* sdO = reinterpret_cast<bf16*>(smem + L::b_do);
  float* sS = reinterpret_cast<float*>(smem + L::b_s);    // S^T [key][query]
  float* sdP = reinterpret_cast<float*>(smem + L::b_dp);  // dP^T [key][query]
  bf16* sP = reinterpret_cast<bf16*>(smem + L::b_p);      // P^T
  bf16* sdS = reinterpret_cast<bf16*>(smem + L::b_ds);    // dS^T
  float* sLse = reinterpret_cast<float*>(smem + L::b_lse);
  float* sD = reinterpret_cast<float*>(smem + L::b_d);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* scratch = reinterpret_cast<float*>(smem + L::b_scratch) + warp * 256;

  const flash::BlockSpan& sp = p.span;
  const index_t Tq = sp.Tq, Tk = sp.Tk, NH = p.NH, group = p.NH / p.NKV;
  const int kv_block = blockIdx.x;
  const index_t kvh = blockIdx.y, b = blockIdx.z;
  const index_t k0 = index_t(kv_block) * kBlockN;
  const int n_qb = flash::num_blocks(Tq, kBlockM);

  load_tile<HS>(sK, L::ldh, k + b * p.bs_kv + k0 * p.ld_kv + kvh * HS, p.ld_kv, Tk - k0);
  load_tile<HS>(sV, L::ldh, v + b * p.bs_kv + k0 * p.ld_kv + kvh * HS, p.ld_kv, Tk - k0);
  FragC dk_frag[HS / 16], dv_frag[HS / 16];
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
    wmma::fill_fragment(dk_frag[n], 0.0f);
    wmma::fill_fragment(dv_frag[n], 0.0f);
  }

  for (index_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const float* lse_h = lse + b * p.lse_b + h * p.lse_h;
    const float* D_h = D + (b * NH + h) * Tq;
    for (int qb = flash::q_block_begin_for_kv_block(sp, kv_block); qb < n_qb; ++qb) {
      const index_t q0 = index_t(qb) * kBlockM;
      __syncthreads();  // every warp is done with the previous Q, dO, dS^T (and K, V are loaded)
      load_tile<HS>(sQ, L::ldh, q + b * p.bs_q + q0 * p.ld_q + h * HS, p.ld_q, Tq - q0);
      load_tile<HS>(sdO, L::ldh, dout + b * p.bs_o + q0 * p.ld_o + h * HS, p.ld_o, Tq - q0);
      for (int i = threadIdx.x; i < kBlockM; i += kThreads) {
        const index_t t = q0 + i;
        sLse[i] = t < Tq ? lse_h[t * p.lse_t] : 0.0f;
        sD[i] = t < Tq ? D_h[t] : 0.0f;
      }
      __syncthreads();

      // S^T_w[16 keys, 64 queries] = K_w Q^T and dP^T_w = V_w dO^T (Q, dO stored [query][d]
      // are Q^T, dO^T in column-major order).
#pragma unroll
      for (int n = 0; n < kBlockM / 16; ++n) {
        FragC acc_s, acc_dp;
        wmma::fill_fragment(acc_s, 0.0f);
        wmma::fill_fragment(acc_dp, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HS / 16; ++kk) {
          FragA a;
          FragBT bt;
          wmma::load_matrix_sync(a, sK + (warp * 16) * L::ldh + kk * 16, L::ldh);
          wmma::load_matrix_sync(bt, sQ + (n * 16) * L::ldh + kk * 16, L::ldh);
          wmma::mma_sync(acc_s, a, bt, acc_s);
          wmma::load_matrix_sync(a, sV + (warp * 16) * L::ldh + kk * 16, L::ldh);
          wmma::load_matrix_sync(bt, sdO + (n * 16) * L::ldh + kk * 16, L::ldh);
          wmma::mma_sync(acc_dp, a, bt, acc_dp);
        }
        wmma::store_matrix_sync(sS + (warp * 16) * L::lds + n * 16, acc_s, L::lds, wmma::mem_row_major);
        wmma::store_matrix_sync(sdP + (warp * 16) * L::lds + n * 16, acc_dp, L::lds, wmma::mem_row_major);
      }
      __syncwarp();

      // P = exp(S scale - lse) (0 where masked), dS = P (dP - D), for this warp's 16 keys.
      for (int e = lane; e < 16 * kBlockM; e += 32) {
        const int r = warp * 16 + e / kBlockM, c = e % kBlockM;
        const index_t key = k0 + r, t = q0 + c;
        const float pr = flash::key_visible(sp, t, key)
                             ? flash::prob_from_lse(sS[r * L::lds + c] * scale_log2, sLse[c])
                             : 0.0f;
        const float ds = pr * (sdP[r * L::lds + c] - sD[c]);
        sP[r * L::ldp + c] = __float2bfloat16(pr);
        sdS[r * L::ldp + c] = __float2bfloat16(ds);
      }
      __syncwarp();

      // dV_w += P^T_w dO,  dK_w += dS^T_w Q  (the softmax scale of dK is applied at the end);
      // kk (16 queries) outermost so that each P^T, dS^T fragment is loaded once.
#pragma unroll
      for (int kk = 0; kk < kBlockM / 16; ++kk) {
        FragA a_p, a_ds;
        wmma::load_matrix_sync(a_p, sP + (warp * 16) * L::ldp + kk * 16, L::ldp);
        wmma::load_matrix_sync(a_ds, sdS + (warp * 16) * L::ldp + kk * 16, L::ldp);
#pragma unroll
        for (int n = 0; n < HS / 16; ++n) {
          FragB bm;
          wmma::load_matrix_sync(bm, sdO + (kk * 16) * L::ldh + n * 16, L::ldh);
          wmma::mma_sync(dv_frag[n], a_p, bm, dv_frag[n]);
          wmma::load_matrix_sync(bm, sQ + (kk * 16) * L::ldh + n * 16, L::ldh);
          wmma::mma_sync(dk_frag[n], a_ds, bm, dk_frag[n]);
        }
      }
      __syncthreads();  // dS^T of all 64 keys is written

      // dQ[q0 + 16w .., :] += scale dS K: dS [query][key] is dS^T in column-major order.
      float* dq_rows = dq_acc + b * p.dq_bs + h * HS;
      for (int n = 0; n < HS / 16; ++n) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
          FragAT a;
          FragB bm;
          wmma::load_matrix_sync(a, sdS + (kk * 16) * L::ldp + warp * 16, L::ldp);
          wmma::load_matrix_sync(bm, sK + (kk * 16) * L::ldh + n * 16, L::ldh);
          wmma::mma_sync(acc, a, bm, acc);
        }
        wmma::store_matrix_sync(scratch, acc, 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const index_t t = q0 + warp * 16 + e / 16;
          if (t < Tq) atomicAdd(dq_rows + t * p.dq_ld + n * 16 + e % 16, scale * scratch[e]);
        }
        __syncwarp();
      }
    }
  }

  // dK = scale dK_j, dV = dV_j for this warp's 16 keys (rows of stride ld_kv): one block owns
  // these rows, so "+=" needs no atomics.
  const index_t key0 = k0 + warp * 16, at = b * p.bs_kv + kvh * HS;
  bf16* dk_rows = p.accumulate ? nullptr : dk + at;
  bf16* dv_rows = p.accumulate ? nullptr : dv + at;
  float* dk_acc_rows = p.accumulate ? dk_acc + at : nullptr;
  float* dv_acc_rows = p.accumulate ? dv_acc + at : nullptr;
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
    store_fragment(scratch, dk_frag[n], dk_rows, dk_acc_rows, key0, Tk, p.ld_kv, n * 16, scale);
    store_fragment(scratch, dv_frag[n], dv_rows, dv_acc_rows, key0, Tk, p.ld_kv, n * 16, 1.0f);
  }
}

// dq[b, t, h, :] (row stride ld_q) = bf16(dq_acc[b, t, h, :]) (contiguous).
__global__ void flash_cast_dq_kernel(bf16* dq, const float* dq_acc, index_t n, index_t NH, index_t HS,
                                     index_t ld_q) {
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x) {
    const index_t d = i % HS, h = (i / HS) % NH, bt = i / (HS * NH);
    dq[bt * ld_q + h * HS + d] = __float2bfloat16(dq_acc[i]);
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<std::uintptr_t>(ptr) & 15u) == 0; }

// Opts the kernel into more than the default 48 KiB of dynamic shared memory.
template <class Kernel>
void set_smem(Kernel kernel, int bytes) {
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <int HS>
void forward_hs(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const Problem& p,
                cudaStream_t stream) {
  constexpr int bytes = Layout<HS>::f_bytes;
  set_smem(flash_forward_kernel<HS>, bytes);
  const dim3 grid(unsigned(flash::num_blocks(p.span.Tq, kBlockM)), unsigned(p.NH), unsigned(p.B));
  const float scale_log2 = float(1.0 / std::sqrt(double(HS))) * flash::kLog2e;
  flash_forward_kernel<HS><<<grid, kThreads, bytes, stream>>>(out, lse, q, k, v, p, scale_log2);
  STRATA_CUDA_LAUNCH_CHECK("flash_forward_kernel");
}

// The forward of either entry point.
void run_forward(index_t HS, bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                 const Problem& p, cudaStream_t stream) {
  if (HS == 64)
    forward_hs<64>(out, lse, q, k, v, p, stream);
  else
    forward_hs<128>(out, lse, q, k, v, p, stream);
}

// The backward of either entry point: D into `D` ([B, NH, Tq]), dq added into p's fp32
// accumulator, dk/dv as p.accumulate says.
void run_backward(index_t HS, bf16* dk, bf16* dv, float* dk_acc, float* dv_acc, float* dq_acc, float* D,
                  const bf16* dout, const bf16* out, const float* lse, const bf16* q, const bf16* k,
                  const bf16* v, const Problem& p, cudaStream_t stream) {
  const index_t rows = p.B * p.span.Tq * p.NH;
  flash_backward_dot_kernel<<<grid_for(rows * 32, 256), 256, 0, stream>>>(D, dout, out, p.B, p.span.Tq, p.NH,
                                                                          HS, p.ld_o, p.bs_o);
  STRATA_CUDA_LAUNCH_CHECK("flash_backward_dot_kernel");
  const dim3 grid(unsigned(flash::num_blocks(p.span.Tk, kBlockN)), unsigned(p.NKV), unsigned(p.B));
  const double scale = 1.0 / std::sqrt(double(HS));
  if (HS == 64) {
    set_smem(flash_backward_kernel<64>, Layout<64>::b_bytes);
    flash_backward_kernel<64><<<grid, kThreads, Layout<64>::b_bytes, stream>>>(
        dk, dv, dk_acc, dv_acc, dq_acc, D, dout, lse, q, k, v, p, float(scale), float(scale) * flash::kLog2e);
  } else {
    set_smem(flash_backward_kernel<128>, Layout<128>::b_bytes);
    flash_backward_kernel<128><<<grid, kThreads, Layout<128>::b_bytes, stream>>>(
        dk, dv, dk_acc, dv_acc, dq_acc, D, dout, lse, q, k, v, p, float(scale), float(scale) * flash::kLog2e);
  }
  STRATA_CUDA_LAUNCH_CHECK("flash_backward_kernel");
}

// The whole-sequence attention as a Problem: out contiguous [B, T, NH, HS], lse [B, NH, T],
// the dq accumulator contiguous like out.
Problem whole_problem(const FlashShape& s) {
  const index_t ld_o = s.NH * s.HS;
  return {flash::whole_sequence(s.T, s.causal),
          s.B,
          s.NH,
          s.NKV,
          s.ld_q,
          s.ld_kv,
          ld_o,
          s.T * s.ld_q,
          s.T * s.ld_kv,
          s.T * ld_o,
          s.NH * s.T,
          1,
          s.T,
          ld_o,
          s.T * ld_o,
          false,
          false};
}

// A ring-attention block as a Problem (kernels/cpu/ring_attention.hpp's layouts): out rows of
// NH HS, lse rows of NH, dq with q's strides.
Problem block_problem(const FlashBlockShape& s) {
  return {{s.Tq, s.Tk, s.q_pos, s.k_pos, s.causal},
          s.B,
          s.NH,
          s.NKV,
          s.ld_q,
          s.ld_kv,
          s.NH * s.HS,
          s.bs_q,
          s.bs_kv,
          s.bs_o,
          s.bs_l,
          s.NH,
          1,
          s.ld_q,
          s.bs_q,
          true,
          true};
}

void check_head_size_and_groups(index_t HS, index_t B, index_t NH, index_t NKV) {
  STRATA_CHECK(HS == 64 || HS == 128, "flash attention: head size HS = ", HS,
               " is not supported (64 or 128)");
  STRATA_CHECK(B >= 0 && NH > 0 && NKV > 0 && NH % NKV == 0, "flash attention: NH = ", NH,
               " is not a positive multiple of NKV = ", NKV, " (B = ", B, ")");
  STRATA_CHECK(B <= 65535 && NH <= 65535, "flash attention: B = ", B, " or NH = ", NH,
               " exceeds the grid limit 65535");
}

}  // namespace

void check_flash_shape(const FlashShape& s) {
  check_head_size_and_groups(s.HS, s.B, s.NH, s.NKV);
  STRATA_CHECK(s.T >= 0, "flash attention: T = ", s.T, " is negative");
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS,
               "flash attention: row strides ld_q = ", s.ld_q, ", ld_kv = ", s.ld_kv,
               " are smaller than the heads they hold (NH HS = ", s.NH * s.HS, ", NKV HS = ", s.NKV * s.HS,
               ")");
  STRATA_CHECK(s.ld_q % 8 == 0 && s.ld_kv % 8 == 0, "flash attention: row strides ld_q = ", s.ld_q,
               ", ld_kv = ", s.ld_kv, " must be multiples of 8 elements (16-byte row loads)");
}

void check_flash_block_shape(const FlashBlockShape& s) {
  check_head_size_and_groups(s.HS, s.B, s.NH, s.NKV);
  STRATA_CHECK(s.Tq >= 0 && s.Tk >= 0, "block attention: Tq = ", s.Tq, ", Tk = ", s.Tk,
               " must not be negative");
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS,
               "block attention: row strides ld_q = ", s.ld_q, ", ld_kv = ", s.ld_kv,
               " are smaller than the heads they hold (NH HS = ", s.NH * s.HS, ", NKV HS = ", s.NKV * s.HS,
               ")");
  STRATA_CHECK(s.ld_q % 8 == 0 && s.ld_kv % 8 == 0 && s.bs_q % 8 == 0 && s.bs_kv % 8 == 0 && s.bs_o % 8 == 0,
               "block attention: strides ld_q = ", s.ld_q, ", ld_kv = ", s.ld_kv, ", bs_q = ", s.bs_q,
               ", bs_kv = ", s.bs_kv, ", bs_o = ", s.bs_o,
               " must be multiples of 8 elements (16-byte row loads)");
}

index_t attention_workspace_floats(const FlashShape& s) {
  return s.B * s.T * s.NH * s.HS + s.B * s.NH * s.T;  // dq accumulator, then D
}

index_t block_attention_workspace_floats(index_t B, index_t Tq, index_t NH) { return B * NH * Tq; }  // D

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       const FlashShape& s, cudaStream_t stream) {
  check_flash_shape(s);
  if (s.B == 0 || s.T == 0) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v),
               "attention_forward: q, k, v must be 16-byte aligned");
  run_forward(s.HS, out, lse, q, k, v, whole_problem(s), stream);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, float* workspace, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, const FlashShape& s,
                        cudaStream_t stream) {
  check_flash_shape(s);
  if (s.B == 0 || s.T == 0) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout),
               "attention_backward: q, k, v, dout must be 16-byte aligned");
  const index_t n_dq = s.B * s.T * s.NH * s.HS;
  float* dq_acc = workspace;
  float* D = workspace + n_dq;
  STRATA_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, std::size_t(n_dq) * sizeof(float), stream));
  run_backward(s.HS, dk, dv, nullptr, nullptr, dq_acc, D, dout, out, lse, q, k, v, whole_problem(s), stream);
  flash_cast_dq_kernel<<<grid_for(n_dq, 256), 256, 0, stream>>>(dq, dq_acc, n_dq, s.NH, s.HS, s.ld_q);
  STRATA_CUDA_LAUNCH_CHECK("flash_cast_dq_kernel");
}

namespace {
// A block no query row sees (every key after every query), or an empty one: nothing to do.
bool nothing_to_do(const FlashBlockShape& s) {
  return s.B == 0 || s.Tq == 0 || s.Tk == 0 || (s.causal && s.k_pos > s.q_pos + s.Tq - 1);
}
}  // namespace

void block_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                             const FlashBlockShape& s, cudaStream_t stream) {
  check_flash_block_shape(s);
  if (nothing_to_do(s)) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v),
               "block_attention_forward: q, k, v must be 16-byte aligned");
  run_forward(s.HS, out, lse, q, k, v, block_problem(s), stream);
}

void block_attention_backward(float* dq, float* dk, float* dv, float* workspace, const bf16* dout,
                              const bf16* out, const float* lse, const bf16* q, const bf16* k, const bf16* v,
                              const FlashBlockShape& s, cudaStream_t stream) {
  check_flash_block_shape(s);
  if (nothing_to_do(s)) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout),
               "block_attention_backward: q, k, v, dout must be 16-byte aligned");
  run_backward(s.HS, nullptr, nullptr, dk, dv, dq, workspace, dout, out, lse, q, k, v, block_problem(s),
               stream);
}

double attention_forward_flops(const FlashShape& s) {
  // S = Q K^T and O = P V: 2 T^2 HS each per (b, h); causal halves the useful work.
  const double full = 4.0 * double(s.B) * double(s.NH) * double(s.T) * double(s.T) * double(s.HS);
  return s.causal ? 0.5 * full : full;
}

}  // namespace strata::kernels::cuda
