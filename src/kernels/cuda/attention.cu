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
    flash_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, FlashShape s,
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

  const index_t T = s.T;
  const int n_qb = flash::num_blocks(T, kBlockM);
  const int q_block = s.causal ? n_qb - 1 - int(blockIdx.x) : int(blockIdx.x);  // causal: longest first
  const index_t h = blockIdx.y, b = blockIdx.z, kvh = h / (s.NH / s.NKV);
  const index_t q0 = index_t(q_block) * kBlockM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = lane >> 1, half = lane & 1;  // this lane's row of the warp's 16, and its column parity
  const index_t t = q0 + warp * 16 + row;      // its query position

  load_tile<HS>(sQ, L::ldh, q + (b * T + q0) * s.ld_q + h * HS, s.ld_q, T - q0);
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
  FragC o_acc[HS / 16];
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) wmma::fill_fragment(o_acc[n], 0.0f);
  float* w_row = sRow + warp * 16;  // this warp's 16 row factors

  flash::RowState st = flash::row_state_init();
  const float* s_row = sS + (warp * 16 + row) * L::lds;
  bf16* p_row = sP + (warp * 16 + row) * L::ldp;
  const int n_kv = flash::kv_blocks_for_q_block(q_block, T, s.causal);
  for (int j = 0; j < n_kv; ++j) {
    const index_t k0 = index_t(j) * kBlockN;
    __syncthreads();  // every warp is done with the previous K, V
    load_tile<HS>(sK, L::ldh, k + (b * T + k0) * s.ld_kv + kvh * HS, s.ld_kv, T - k0);
    load_tile<HS>(sV, L::ldh, v + (b * T + k0) * s.ld_kv + kvh * HS, s.ld_kv, T - k0);
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
      if (flash::key_visible(t, k0 + c, T, s.causal)) mx = fmaxf(mx, s_row[c] * scale_log2);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // both lanes of the row agree
    const float alpha = flash::row_begin_block(st, mx);
    float sum = 0.0f;
#pragma unroll 8
    for (int i = 0; i < kBlockN / 2; ++i) {
      const int c = 2 * i + half;
      const float p = flash::key_visible(t, k0 + c, T, s.causal)
                          ? flash::exp2_shifted(s_row[c] * scale_log2, st.m2)
                          : 0.0f;
      p_row[c] = __float2bfloat16(p);
      sum += p;
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

  // out = O / l, through a 16x16 scratch (this warp's S rows, no longer needed).
  __syncwarp();  // every lane is done reading w_row (alpha) and its S row
  if (half == 0) w_row[row] = flash::row_inv_sum(st);
  __syncwarp();
  float* scratch = sS + (warp * 16) * L::lds;
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
#pragma unroll
    for (int i = 0; i < o_acc[n].num_elements; ++i) o_acc[n].x[i] *= w_row[int(row_of.x[i])];
    wmma::store_matrix_sync(scratch, o_acc[n], 16, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) {
      const index_t tt = q0 + warp * 16 + e / 16;
      if (tt < T) out[((b * T + tt) * s.NH + h) * HS + n * 16 + e % 16] = __float2bfloat16(scratch[e]);
    }
    __syncwarp();
  }
  if (t < T && half == 0) lse[(b * s.NH + h) * T + t] = flash::row_lse(st);
}

// D[b, h, t] = sum_d dout[b, t, h, d] out[b, t, h, d]: one warp per (b, t, h) row r =
// (b T + t) NH + h, warps striding over the rows.
__global__ void flash_backward_dot_kernel(float* D, const bf16* dout, const bf16* out, index_t B, index_t T,
                                          index_t NH, index_t HS) {
  const index_t rows = B * T * NH;
  const index_t warps = index_t(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  // r is uniform across a warp, so whole warps run the loop (and its shuffles) together.
  for (index_t r = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
    float acc = 0.0f;
    for (index_t d = lane; d < HS; d += 32)
      acc += __bfloat162float(dout[r * HS + d]) * __bfloat162float(out[r * HS + d]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
      const index_t h = r % NH, bt = r / NH;
      const index_t b = bt / T, t = bt % T;
      D[(b * NH + h) * T + t] = acc;
    }
  }
}

// Writes f * (a warp's 16x16 accumulator) to rows key0.. (< T) of dst (row stride ld), columns
// col0..col0+15, through the warp's fp32 scratch.
__device__ inline void store_fragment_bf16(float* scratch, const FragC& frag, bf16* dst, index_t key0,
                                           index_t T, index_t ld, index_t col0, float f) {
  const int lane = threadIdx.x % 32;
  wmma::store_matrix_sync(scratch, frag, 16, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 256; e += 32) {
    const index_t key = key0 + e / 16;
    if (key < T) dst[key * ld + col0 + e % 16] = __float2bfloat16(f * scratch[e]);
  }
  __syncwarp();
}

template <int HS>
__global__ void __launch_bounds__(kThreads)
    flash_backward_kernel(bf16* dk, bf16* dv, float* dq_acc, const float* D, const bf16* dout,
                          const float* lse, const bf16* q, const bf16* k, const bf16* v, FlashShape s,
                          float scale, float scale_log2) {
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

  const index_t T = s.T, NH = s.NH, group = s.NH / s.NKV, ld_o = s.NH * HS;
  const int kv_block = blockIdx.x;
  const index_t kvh = blockIdx.y, b = blockIdx.z;
  const index_t k0 = index_t(kv_block) * kBlockN;
  const int n_qb = flash::num_blocks(T, kBlockM);

  load_tile<HS>(sK, L::ldh, k + (b * T + k0) * s.ld_kv + kvh * HS, s.ld_kv, T - k0);
  load_tile<HS>(sV, L::ldh, v + (b * T + k0) * s.ld_kv + kvh * HS, s.ld_kv, T - k0);
  FragC dk_acc[HS / 16], dv_acc[HS / 16];
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
    wmma::fill_fragment(dk_acc[n], 0.0f);
    wmma::fill_fragment(dv_acc[n], 0.0f);
  }

  for (index_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int qb = flash::q_block_begin_for_kv_block(kv_block, s.causal); qb < n_qb; ++qb) {
      const index_t q0 = index_t(qb) * kBlockM;
      __syncthreads();  // every warp is done with the previous Q, dO, dS^T (and K, V are loaded)
      load_tile<HS>(sQ, L::ldh, q + (b * T + q0) * s.ld_q + h * HS, s.ld_q, T - q0);
      load_tile<HS>(sdO, L::ldh, dout + (b * T + q0) * ld_o + h * HS, ld_o, T - q0);
      for (int i = threadIdx.x; i < kBlockM; i += kThreads) {
        const index_t t = q0 + i;
        sLse[i] = t < T ? lse[(b * NH + h) * T + t] : 0.0f;
        sD[i] = t < T ? D[(b * NH + h) * T + t] : 0.0f;
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
        const float p = flash::key_visible(t, key, T, s.causal)
                            ? flash::prob_from_lse(sS[r * L::lds + c] * scale_log2, sLse[c])
                            : 0.0f;
        const float ds = p * (sdP[r * L::lds + c] - sD[c]);
        sP[r * L::ldp + c] = __float2bfloat16(p);
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
          wmma::mma_sync(dv_acc[n], a_p, bm, dv_acc[n]);
          wmma::load_matrix_sync(bm, sQ + (kk * 16) * L::ldh + n * 16, L::ldh);
          wmma::mma_sync(dk_acc[n], a_ds, bm, dk_acc[n]);
        }
      }
      __syncthreads();  // dS^T of all 64 keys is written

      // dQ[q0 + 16w .., :] += scale dS K: dS [query][key] is dS^T in column-major order.
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
          if (t < T) atomicAdd(dq_acc + ((b * T + t) * NH + h) * HS + n * 16 + e % 16, scale * scratch[e]);
        }
        __syncwarp();
      }
    }
  }

  // dK = scale dK_j, dV = dV_j for this warp's 16 keys (bf16, rows of stride ld_kv).
  const index_t key0 = k0 + warp * 16;
  bf16* dk_rows = dk + b * T * s.ld_kv + kvh * HS;
  bf16* dv_rows = dv + b * T * s.ld_kv + kvh * HS;
#pragma unroll
  for (int n = 0; n < HS / 16; ++n) {
    store_fragment_bf16(scratch, dk_acc[n], dk_rows, key0, T, s.ld_kv, n * 16, scale);
    store_fragment_bf16(scratch, dv_acc[n], dv_rows, key0, T, s.ld_kv, n * 16, 1.0f);
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

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

// Opts the kernel into more than the default 48 KiB of dynamic shared memory.
template <class Kernel>
void set_smem(Kernel kernel, int bytes) {
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <int HS>
void forward_hs(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const FlashShape& s,
                cudaStream_t stream) {
  constexpr int bytes = Layout<HS>::f_bytes;
  set_smem(flash_forward_kernel<HS>, bytes);
  const dim3 grid(unsigned(flash::num_blocks(s.T, kBlockM)), unsigned(s.NH), unsigned(s.B));
  const float scale_log2 = float(1.0 / std::sqrt(double(HS))) * flash::kLog2e;
  flash_forward_kernel<HS><<<grid, kThreads, bytes, stream>>>(out, lse, q, k, v, s, scale_log2);
  STRATA_CUDA_LAUNCH_CHECK("flash_forward_kernel");
}

template <int HS>
void backward_hs(bf16* dk, bf16* dv, float* dq_acc, const float* D, const bf16* dout, const float* lse,
                 const bf16* q, const bf16* k, const bf16* v, const FlashShape& s, cudaStream_t stream) {
  constexpr int bytes = Layout<HS>::b_bytes;
  set_smem(flash_backward_kernel<HS>, bytes);
  const dim3 grid(unsigned(flash::num_blocks(s.T, kBlockN)), unsigned(s.NKV), unsigned(s.B));
  const double scale = 1.0 / std::sqrt(double(HS));
  flash_backward_kernel<HS><<<grid, kThreads, bytes, stream>>>(dk, dv, dq_acc, D, dout, lse, q, k, v, s,
                                                               float(scale), float(scale) * flash::kLog2e);
  STRATA_CUDA_LAUNCH_CHECK("flash_backward_kernel");
}

}  // namespace

void check_flash_shape(const FlashShape& s) {
  STRATA_CHECK(s.HS == 64 || s.HS == 128, "flash attention: head size HS = ", s.HS,
               " is not supported (64 or 128)");
  STRATA_CHECK(s.B >= 0 && s.T >= 0 && s.NH > 0 && s.NKV > 0 && s.NH % s.NKV == 0,
               "flash attention: NH = ", s.NH, " is not a positive multiple of NKV = ", s.NKV, " (B = ", s.B,
               ", T = ", s.T, ")");
  STRATA_CHECK(s.ld_q >= s.NH * s.HS && s.ld_kv >= s.NKV * s.HS,
               "flash attention: row strides ld_q = ", s.ld_q, ", ld_kv = ", s.ld_kv,
               " are smaller than the heads they hold (NH HS = ", s.NH * s.HS, ", NKV HS = ", s.NKV * s.HS,
               ")");
  STRATA_CHECK(s.ld_q % 8 == 0 && s.ld_kv % 8 == 0, "flash attention: row strides ld_q = ", s.ld_q,
               ", ld_kv = ", s.ld_kv, " must be multiples of 8 elements (16-byte row loads)");
  STRATA_CHECK(s.B <= 65535 && s.NH <= 65535, "flash attention: B = ", s.B, " or NH = ", s.NH,
               " exceeds the grid limit 65535");
}

index_t attention_workspace_floats(const FlashShape& s) {
  return s.B * s.T * s.NH * s.HS + s.B * s.NH * s.T;  // dq accumulator, then D
}

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       const FlashShape& s, cudaStream_t stream) {
  check_flash_shape(s);
  if (s.B == 0 || s.T == 0) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v),
               "attention_forward: q, k, v must be 16-byte aligned");
  if (s.HS == 64)
    forward_hs<64>(out, lse, q, k, v, s, stream);
  else
    forward_hs<128>(out, lse, q, k, v, s, stream);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, float* workspace, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, const FlashShape& s,
                        cudaStream_t stream) {
  check_flash_shape(s);
  if (s.B == 0 || s.T == 0) return;
  STRATA_CHECK(aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout),
               "attention_backward: q, k, v, dout must be 16-byte aligned");
  const index_t n_dq = s.B * s.T * s.NH * s.HS, rows = s.B * s.T * s.NH;
  float* dq_acc = workspace;
  float* D = workspace + n_dq;
  STRATA_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, std::size_t(n_dq) * sizeof(float), stream));
  flash_backward_dot_kernel<<<grid_for(rows * 32, 256), 256, 0, stream>>>(D, dout, out, s.B, s.T, s.NH, s.HS);
  STRATA_CUDA_LAUNCH_CHECK("flash_backward_dot_kernel");
  if (s.HS == 64)
    backward_hs<64>(dk, dv, dq_acc, D, dout, lse, q, k, v, s, stream);
  else
    backward_hs<128>(dk, dv, dq_acc, D, dout, lse, q, k, v, s, stream);
  flash_cast_dq_kernel<<<grid_for(n_dq, 256), 256, 0, stream>>>(dq, dq_acc, n_dq, s.NH, s.HS, s.ld_q);
  STRATA_CUDA_LAUNCH_CHECK("flash_cast_dq_kernel");
}

double attention_forward_flops(const FlashShape& s) {
  // S = Q K^T and O = P V: 2 T^2 HS each per (b, h); causal halves the useful work.
  const double full = 4.0 * double(s.B) * double(s.NH) * double(s.T) * double(s.T) * double(s.HS);
  return s.causal ? 0.5 * full : full;
}

}  // namespace strata::kernels::cuda
