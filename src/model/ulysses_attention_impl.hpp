// Stage<B>'s Ulysses context-parallel members (stage.hpp), included by stage_impl.hpp.
//
// DeepSpeed-Ulysses (Jacobs et al. 2023, sec. 3.1): the sequence split of context parallelism
// (each cp rank holds chunks r and 2 cp - 1 - r of every sequence, c = T / (2 cp) positions
// each; ring_attention_impl.hpp) stays everywhere but in attention. Before it, one all-to-all
// over the cp group turns this rank's [B, 2c, NH HS] queries (and keys, values) into whole
// sequences of NH / cp heads: rank s receives heads [s NH / cp, (s + 1) NH / cp) of every
// rank's chunks and puts each chunk at its place in the sequence. Each rank then runs the
// backend's own attention (causal or not) over the cp 2c = T positions of its heads; a second
// all-to-all returns the output to the sequence split before the output projection. GQA: the
// KV heads split the same way, so query head j of rank s reads a KV head of rank s (groups
// stay whole; validation asks NH / tp and NKV / tp divisible by cp).
//
// Backward: dO to the heads split (all-to-all), the backend's attention backward, dQ, dK, dV
// back to the sequence split (one all-to-all). The layer's q, k, v keep the heads layout after
// the forward (the backward reads them there) and the output in that layout is kept in cp_y.
//
// Per layer and micro-batch each rank sends and receives (cp - 1) / cp of N (Q + 2 KV) + N Q
// elements forward and N Q + N (Q + 2 KV) backward (the ring: 2 (cp - 1) N KV forward).
#pragma once

namespace strata::model {

template <class B>
AttentionDims Stage<B>::ulysses_dims() const {
  const std::int64_t cp = plan_.place.cp_size;
  return {d_.B,  d_.T * cp, d_.NH / cp, d_.NKV / cp,
          d_.HS, d_.Q / cp, d_.KV / cp, plan_.cfg.attention == config::AttentionKind::causal};
}

// seq -> heads. Block s of the send buffer holds, part after part, columns [s w, (s + 1) w) of
// every local row ([N, w] each); block s received holds rank s's two chunks of every sequence,
// which go to rows cp_chunk_position(s, half) .. + c of each sequence.
template <class B>
void Stage<B>::ulysses_to_heads(const UlyssesPart* parts, int n) {
  const int cp = plan_.place.cp_size;
  const std::int64_t N = d_.N, c = d_.T / 2, T = d_.T * cp;
  std::int64_t width = 0;
  for (int p = 0; p < n; ++p) width += parts[p].w;
  for (int s = 0; s < cp; ++s) {
    std::int64_t off = s * N * width;
    for (int p = 0; p < n; ++p) {
      const UlyssesPart& x = parts[p];
      be_->copy_2d(cp_send_ + off, x.w, x.seq + s * x.w, cp * x.w, N, x.w);
      off += N * x.w;
    }
  }
  cp_->all_to_all(cp_send_, cp_recv_, std::size_t(N * width), dtype_of<A>());
  for (int s = 0; s < cp; ++s) {
    std::int64_t off = s * N * width;
    for (int p = 0; p < n; ++p) {
      const UlyssesPart& x = parts[p];
      for (int half = 0; half < 2; ++half)
        be_->copy_2d(x.heads + cp_chunk_position(s, half) * x.w, T * x.w, cp_recv_ + off + half * c * x.w,
                     2 * c * x.w, d_.B, c * x.w);
      off += N * x.w;
    }
  }
}

// heads -> seq, the inverse: block s sent holds rank s's chunks of this rank's heads; block s
// received holds rank s's heads of this rank's chunks, columns [s w, (s + 1) w) of every row.
template <class B>
void Stage<B>::ulysses_to_sequence(const UlyssesPart* parts, int n) {
  const int cp = plan_.place.cp_size;
  const std::int64_t N = d_.N, c = d_.T / 2, T = d_.T * cp;
  std::int64_t width = 0;
  for (int p = 0; p < n; ++p) width += parts[p].w;
  for (int s = 0; s < cp; ++s) {
    std::int64_t off = s * N * width;
    for (int p = 0; p < n; ++p) {
      const UlyssesPart& x = parts[p];
      for (int half = 0; half < 2; ++half)
        be_->copy_2d(cp_send_ + off + half * c * x.w, 2 * c * x.w, x.heads + cp_chunk_position(s, half) * x.w,
                     T * x.w, d_.B, c * x.w);
      off += N * x.w;
    }
  }
  cp_->all_to_all(cp_send_, cp_recv_, std::size_t(N * width), dtype_of<A>());
  for (int s = 0; s < cp; ++s) {
    std::int64_t off = s * N * width;
    for (int p = 0; p < n; ++p) {
      const UlyssesPart& x = parts[p];
      be_->copy_2d(x.seq + s * x.w, cp * x.w, cp_recv_ + off, x.w, N, x.w);
      off += N * x.w;
    }
  }
}

template <class B>
void Stage<B>::ulysses_attention_forward(const LayerActs& a) {
  const int cp = plan_.place.cp_size;
  STRATA_CHECK(cp_ && cp_->size() == cp, "context parallelism over ", cp,
               " ranks needs a cp communicator of that size");
  const std::int64_t w = d_.Q / cp, wkv = d_.KV / cp;
  const UlyssesPart qkv[3] = {{a.q, a.q, w}, {a.k, a.k, wkv}, {a.v, a.v, wkv}};
  ulysses_to_heads(qkv, 3);
  be_->attention_forward(a.cp_y, a.attn_saved, a.q, a.k, a.v, ulysses_dims());
  const UlyssesPart out{a.attn_y, a.cp_y, w};
  ulysses_to_sequence(&out, 1);
}

template <class B>
void Stage<B>::ulysses_attention_backward(const LayerActs& a) {
  const int cp = plan_.place.cp_size;
  const std::int64_t w = d_.Q / cp, wkv = d_.KV / cp;
  const UlyssesPart d_out{d_attn_y_, d_attn_y_, w};
  ulysses_to_heads(&d_out, 1);
  be_->attention_backward(d_q_, d_k_, d_v_, attn_work_, d_attn_y_, a.cp_y, a.attn_saved, a.q, a.k, a.v,
                          ulysses_dims());
  const UlyssesPart grads[3] = {{d_q_, d_q_, w}, {d_k_, d_k_, wkv}, {d_v_, d_v_, wkv}};
  ulysses_to_sequence(grads, 3);
}

}  // namespace strata::model
