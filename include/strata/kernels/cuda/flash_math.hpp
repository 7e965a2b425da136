// The scalar pieces of the fused attention (src/kernels/cuda/attention.cu) as __host__
// __device__ functions, so that the blocking, the mask and the online-softmax merges can be
// unit-tested on a machine without a GPU (tests/cuda/test_flash_math.cpp runs them on the host).
//
// Online softmax (Milakov & Gimelshein 2018; FlashAttention-2, Dao 2023, sec. 3.1). Scores are
// kept in base 2: s2 = S * scale * log2(e), so exp(S * scale - m) = exp2(s2 - m2). For one
// query row, after key blocks 1..j:
//   m_j = max(m_{j-1}, max_u s2_u)          running maximum (log2 units)
//   l_j = 2^(m_{j-1} - m_j) l_{j-1} + sum_u 2^(s2_u - m_j)
//   O_j = 2^(m_{j-1} - m_j) O_{j-1} + sum_u 2^(s2_u - m_j) v_u
// and at the end out = O / l, lse = (m + log2 l) ln 2 (natural log, what the backward reads:
// P = exp2(s2 - lse log2(e))). Masked scores are -inf; a row whose scores are all -inf so far
// has m = -inf, and the rescale factor and the probabilities are then 0, never NaN.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace strata::kernels::cuda::flash {

// Tile sizes of both kernels: 64 query rows and 64 keys per step, 4 warps of 16 rows.
constexpr int kBlockM = 64;
constexpr int kBlockN = 64;
constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ inline float neg_inf() { return -INFINITY; }

__host__ __device__ inline int num_blocks(std::int64_t T, int block) { return int((T + block - 1) / block); }

// Which query rows see which keys: Tq query rows at sequence positions q_pos.., Tk key rows at
// k_pos.. (the whole-sequence attention is Tq = Tk = T, q_pos = k_pos = 0; ring attention's
// blocks have offsets and Tq != Tk). Causal masks a key whose position is after the query's.
struct BlockSpan {
  std::int64_t Tq, Tk, q_pos, k_pos;
  bool causal;
};
__host__ __device__ inline BlockSpan whole_sequence(std::int64_t T, bool causal) {
  return {T, T, 0, 0, causal};
}

// Whether query row t sees key row u (both local to the block).
__host__ __device__ inline bool key_visible(const BlockSpan& s, std::int64_t t, std::int64_t u) {
  return t < s.Tq && u < s.Tk && (!s.causal || s.k_pos + u <= s.q_pos + t);
}
__host__ __device__ inline bool key_visible(std::int64_t t, std::int64_t s, std::int64_t T, bool causal) {
  return key_visible(whole_sequence(T, causal), t, s);
}

// Forward: the key blocks a query block visits are [0, kv_blocks_for_q_block). Causal: a key
// block starting after the position of the block's last row is fully masked and skipped (the
// visible keys of a row are a prefix of the block, so only trailing blocks are ever skipped).
__host__ __device__ inline int kv_blocks_for_q_block(const BlockSpan& s, int q_block) {
  const int all = num_blocks(s.Tk, kBlockN);
  if (!s.causal) return all;
  std::int64_t last_row = std::int64_t(q_block) * kBlockM + kBlockM - 1;
  if (last_row > s.Tq - 1) last_row = s.Tq - 1;
  const std::int64_t last_key = s.q_pos + last_row - s.k_pos;  // local index of its last visible key
  if (last_key < 0) return 0;
  const std::int64_t n = last_key / kBlockN + 1;
  return n < all ? int(n) : all;
}
__host__ __device__ inline int kv_blocks_for_q_block(int q_block, std::int64_t T, bool causal) {
  return kv_blocks_for_q_block(whole_sequence(T, causal), q_block);
}

// Backward: the query blocks a key block meets are [q_block_begin, num_blocks(Tq, kBlockM))
// (empty when the begin is past the end). Causal: a query block whose last row is before the
// key block's first key sees none of it.
__host__ __device__ inline int q_block_begin_for_kv_block(const BlockSpan& s, int kv_block) {
  if (!s.causal) return 0;
  const std::int64_t first_row =
      s.k_pos + std::int64_t(kv_block) * kBlockN - s.q_pos;  // first row that sees it
  if (first_row <= 0) return 0;
  if (first_row >= s.Tq) return num_blocks(s.Tq, kBlockM);  // no query row sees it
  return int(first_row / kBlockM);
}
__host__ __device__ inline int q_block_begin_for_kv_block(int kv_block, bool causal) {
  if (!causal) return 0;
  return int((std::int64_t(kv_block) * kBlockN) / kBlockM);
}

// exp2(s2 - m2), 0 where the row has no visible key yet (m2 = -inf) or s2 is masked.
__host__ __device__ inline float exp2_shifted(float s2, float m2) {
  return m2 == -INFINITY ? 0.0f : exp2f(s2 - m2);
}

// Factor by which l and O are rescaled when the running maximum moves from m_old to m_new.
__host__ __device__ inline float rescale_factor(float m_old, float m_new) {
  return m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);
}

__host__ __device__ inline float fmax_f(float a, float b) { return a > b ? a : b; }

// The running statistics of one query row.
struct RowState {
  float m2;  // running maximum of s2 (log2 units)
  float l;   // running sum of 2^(s2 - m2)
};

__host__ __device__ inline RowState row_state_init() { return {-INFINITY, 0.0f}; }
// The state of a row that has already merged earlier key blocks into a running (out, lse)
// (ring attention): m2 = lse log2(e), l = 1, so that O = out and the running sums continue
// from there; the empty state where lse = -inf (that row's out is then ignored).
__host__ __device__ inline RowState row_state_from_lse(float lse) {
  return lse == -INFINITY ? row_state_init() : RowState{lse * kLog2e, 1.0f};
}

// One key block of a row: block_max2 = max of its s2 (-inf if all masked). Returns the
// factor alpha by which the caller rescales O; state.m2 becomes the new maximum. The caller
// then computes p_u = exp2_shifted(s2_u, state.m2) and calls row_add_sum(state, sum_u p_u).
__host__ __device__ inline float row_begin_block(RowState& state, float block_max2) {
  const float m_new = fmax_f(state.m2, block_max2);
  const float alpha = rescale_factor(state.m2, m_new);
  state.m2 = m_new;
  state.l *= alpha;
  return alpha;
}
__host__ __device__ inline void row_add_sum(RowState& state, float block_sum) { state.l += block_sum; }

// Merge of two partial states of one row over disjoint key sets (what the two lanes that
// share a row, or two key blocks, combine): m = max, l = l_a 2^(m_a - m) + l_b 2^(m_b - m).
__host__ __device__ inline RowState row_merge(RowState a, RowState b) {
  const float m = fmax_f(a.m2, b.m2);
  return {m, a.l * rescale_factor(a.m2, m) + b.l * rescale_factor(b.m2, m)};
}

// Natural-log log-sum-exp of the row's scaled scores; -inf for a row that saw no key.
__host__ __device__ inline float row_lse(RowState state) {
  return state.l > 0.0f ? (state.m2 + log2f(state.l)) * kLn2 : -INFINITY;
}
// 1 / l for the final normalisation (0 for an empty row, whose O is 0).
__host__ __device__ inline float row_inv_sum(RowState state) {
  return state.l > 0.0f ? 1.0f / state.l : 0.0f;
}

// Backward: probability from the saved lse (natural log) and the base-2 score.
__host__ __device__ inline float prob_from_lse(float s2, float lse) {
  return lse == -INFINITY ? 0.0f : exp2f(s2 - lse * kLog2e);
}

}  // namespace strata::kernels::cuda::flash
