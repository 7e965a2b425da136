// Stage<B>'s context-parallel members (stage.hpp), included by stage_impl.hpp.
//
// Context parallelism splits each sequence of T positions into 2 cp chunks of c = T / (2 cp);
// cp rank r holds chunks r and 2 cp - 1 - r (causal load balance: every rank gets one early
// and one late chunk, so the same share of the causal mask's work). The stage's rows are
// [B, 2c]: chunk r at local rows 0..c-1 of each sequence, chunk 2cp-1-r at c..2c-1. Everything
// outside attention is per row and runs as it is; RoPE and learned positions use the global
// positions of the two chunks.
//
// Ring attention (Liu et al. 2023), forward of one layer on rank r: step i = 0 .. cp-1 holds
// the K/V of rank (r - i) mod cp; it posts the non-blocking send of that block to rank r+1 and
// the receive of the next from rank r-1, computes the four (query chunk, key chunk) blocks
// (block_attention_forward merges each into the running output and log-sum-exp; blocks no
// query sees are skipped), then waits. Backward: the same ring, with each K/V block travelling
// together with its dK/dV accumulator: a rank adds its queries' contribution to the block it
// holds and passes both on; after cp steps the accumulator of every block is back home. The
// log-sum-exp saved by the forward makes each block's backward independent of the others.
#pragma once
#include <limits>
#include <type_traits>

namespace strata::model {

namespace detail {
template <class B>
constexpr bool has_block_attention = requires(const B& b, typename B::Act* a, typename B::Stat* s,
                                              const BlockAttentionDims& d) {
  b.block_attention_forward(a, s, s, a, a, a, d);
};
}  // namespace detail

template <class B>
std::int64_t Stage<B>::cp_chunk_position(int rank, int half) const {
  const int cp = plan_.place.cp_size;
  const std::int64_t c = d_.T / 2;
  return std::int64_t(half == 0 ? rank : 2 * cp - 1 - rank) * c;
}

template <class B>
BlockAttentionDims Stage<B>::cp_block(int q_half, int kv_rank, int kv_half) const {
  const std::int64_t T = d_.T, c = T / 2, Q = d_.Q, KV = d_.KV;
  return {d_.B,
          c,
          c,
          d_.NH,
          d_.NKV,
          d_.HS,
          Q,
          KV,
          T * Q,
          T * KV,
          T * Q,
          T * d_.NH,
          cp_chunk_position(plan_.place.cp_rank, q_half),
          cp_chunk_position(kv_rank, kv_half),
          plan_.cfg.attention == config::AttentionKind::causal};
}

template <class B>
void Stage<B>::ring_attention_forward(const LayerActs& a) {
  if constexpr (!detail::has_block_attention<B>) {
    throw make_error("context parallelism: the ", B::spec().name, " backend has no ring-attention kernel");
  } else {
    STRATA_CHECK(cp_ && cp_->size() == plan_.place.cp_size, "context parallelism over ", plan_.place.cp_size,
                 " ranks needs a cp communicator of that size");
    const int cp = plan_.place.cp_size, r = plan_.place.cp_rank, next = (r + 1) % cp,
              prev = (r + cp - 1) % cp;
    const std::int64_t N = d_.N, KV = d_.KV, Q = d_.Q, c = d_.T / 2;
    const std::size_t n = std::size_t(N * KV);
    be_->fill(a.attn_y, A(0), N * Q);
    be_->fill(a.attn_saved, -std::numeric_limits<S>::infinity(), N * d_.NH);
    A* kbuf[2] = {cp_ring_, cp_ring_ + N * KV};
    A* vbuf[2] = {cp_ring_ + 2 * N * KV, cp_ring_ + 3 * N * KV};
    const A* k = a.k;
    const A* v = a.v;
    for (int i = 0; i < cp; ++i) {
      const int src = (r - i + cp) % cp;
      comm::Work w[4];
      if (i + 1 < cp) {  // the next block arrives while this one is computed
        w[0] = cp_->irecv(kbuf[i % 2], n, dtype_of<A>(), prev, 0);
        w[1] = cp_->irecv(vbuf[i % 2], n, dtype_of<A>(), prev, 1);
        w[2] = cp_->isend(k, n, dtype_of<A>(), next, 0);
        w[3] = cp_->isend(v, n, dtype_of<A>(), next, 1);
      }
      for (int qh = 0; qh < 2; ++qh)
        for (int kh = 0; kh < 2; ++kh)
          be_->block_attention_forward(a.attn_y + qh * c * Q, a.attn_saved + qh * c * d_.NH, cp_work_,
                                       a.q + qh * c * Q, k + kh * c * KV, v + kh * c * KV,
                                       cp_block(qh, src, kh));
      for (comm::Work& x : w) cp_->wait(x);
      k = kbuf[i % 2];
      v = vbuf[i % 2];
    }
  }
}

template <class B>
void Stage<B>::ring_attention_backward(const LayerActs& a) {
  if constexpr (!detail::has_block_attention<B>) {
    throw make_error("context parallelism: the ", B::spec().name, " backend has no ring-attention kernel");
  } else {
    const int cp = plan_.place.cp_size, r = plan_.place.cp_rank, next = (r + 1) % cp,
              prev = (r + cp - 1) % cp;
    const std::int64_t N = d_.N, KV = d_.KV, Q = d_.Q, c = d_.T / 2;
    const std::size_t n = std::size_t(N * KV);
    A* kbuf[2] = {cp_ring_, cp_ring_ + N * KV};
    A* vbuf[2] = {cp_ring_ + 2 * N * KV, cp_ring_ + 3 * N * KV};
    // The gradient accumulators are in G (fp32 on CUDA: one rounding to A at the end).
    G* dkbuf[2] = {cp_grad_, cp_grad_ + N * KV};
    G* dvbuf[2] = {cp_grad_ + 2 * N * KV, cp_grad_ + 3 * N * KV};
    G* dq = nullptr;
    if constexpr (std::is_same_v<A, G>)
      dq = d_q_;
    else
      dq = cp_dq_;
    be_->fill(dq, G(0), N * Q);
    be_->fill(dkbuf[0], G(0), N * KV);
    be_->fill(dvbuf[0], G(0), N * KV);
    const A* k = a.k;
    const A* v = a.v;
    for (int i = 0; i < cp; ++i) {
      const int src = (r - i + cp) % cp;
      comm::Work w[8];
      if (i + 1 < cp) {
        w[0] = cp_->irecv(kbuf[i % 2], n, dtype_of<A>(), prev, 0);
        w[1] = cp_->irecv(vbuf[i % 2], n, dtype_of<A>(), prev, 1);
        w[2] = cp_->isend(k, n, dtype_of<A>(), next, 0);
        w[3] = cp_->isend(v, n, dtype_of<A>(), next, 1);
      }
      G* dk = dkbuf[i % 2];  // the accumulator of block src, from the ranks before this one
      G* dv = dvbuf[i % 2];
      for (int qh = 0; qh < 2; ++qh)
        for (int kh = 0; kh < 2; ++kh)
          be_->block_attention_backward(dq + qh * c * Q, dk + kh * c * KV, dv + kh * c * KV, cp_work_,
                                        d_attn_y_ + qh * c * Q, a.attn_y + qh * c * Q,
                                        a.attn_saved + qh * c * d_.NH, a.q + qh * c * Q, k + kh * c * KV,
                                        v + kh * c * KV, cp_block(qh, src, kh));
      // The accumulator moves on (after the last step it reaches the block's owner).
      w[4] = cp_->irecv(dkbuf[(i + 1) % 2], n, dtype_of<G>(), prev, 2);
      w[5] = cp_->irecv(dvbuf[(i + 1) % 2], n, dtype_of<G>(), prev, 3);
      w[6] = cp_->isend(dk, n, dtype_of<G>(), next, 2);
      w[7] = cp_->isend(dv, n, dtype_of<G>(), next, 3);
      for (comm::Work& x : w) cp_->wait(x);
      k = kbuf[i % 2];
      v = vbuf[i % 2];
    }
    be_->cast_grad_to_act(d_k_, dkbuf[cp % 2], N * KV);
    be_->cast_grad_to_act(d_v_, dvbuf[cp % 2], N * KV);
    if constexpr (!std::is_same_v<A, G>) be_->cast_grad_to_act(d_q_, dq, N * Q);
  }
}

template <class B>
void Stage<B>::rope_rows(bool backward, A* x, std::int64_t heads, std::int64_t pos) {
  const double theta = plan_.cfg.rope_theta;
  if (!context_parallel()) {
    be_->rope(backward, x, rope_table_, d_.B, d_.T, heads, d_.HS, theta, pos);
    return;
  }
  const std::int64_t c = d_.T / 2, row = heads * d_.HS;
  for (std::int64_t b = 0; b < d_.B; ++b)
    for (int h = 0; h < 2; ++h)
      be_->rope(backward, x + (b * d_.T + h * c) * row, rope_table_, 1, c, heads, d_.HS, theta,
                cp_chunk_position(plan_.place.cp_rank, h));
}

template <class B>
void Stage<B>::position_embedding_rows(A* out, std::int64_t pos) {
  if (!context_parallel()) {
    be_->position_embedding_forward(out, w_.wpe + pos * d_.C, d_.B, d_.T, d_.C);
    return;
  }
  const std::int64_t c = d_.T / 2;
  for (std::int64_t b = 0; b < d_.B; ++b)
    for (int h = 0; h < 2; ++h)
      be_->position_embedding_forward(out + (b * d_.T + h * c) * d_.C,
                                      w_.wpe + cp_chunk_position(plan_.place.cp_rank, h) * d_.C, 1, c, d_.C);
}

template <class B>
void Stage<B>::position_embedding_grad_rows(const G* d) {
  if (!context_parallel()) {
    be_->position_embedding_backward(g_.wpe, d, d_.B, d_.T, d_.C);
    return;
  }
  const std::int64_t c = d_.T / 2;
  for (std::int64_t b = 0; b < d_.B; ++b)
    for (int h = 0; h < 2; ++h)
      be_->position_embedding_backward(g_.wpe + cp_chunk_position(plan_.place.cp_rank, h) * d_.C,
                                       d + (b * d_.T + h * c) * d_.C, 1, c, d_.C);
}

template <class B>
void Stage<B>::reduce_context_parallel_grads(std::int64_t begin, std::int64_t end) {
  reduce_context_parallel_grads_at(grads_, begin, end);
}

template <class B>
void Stage<B>::reduce_context_parallel_grads_at(G* base, std::int64_t begin, std::int64_t end) {
  if (!context_parallel()) return;
  end = std::min(end, plan_.table.numel());
  if (end > begin) cp_->all_reduce(base + begin, std::size_t(end - begin), dtype_of<G>());
}

}  // namespace strata::model
