// The decoder over any backend (decoder.hpp); included by the files that instantiate it.
#pragma once
#include <algorithm>

#include "stage_impl.hpp"
#include "strata/model/decoder.hpp"

namespace strata::model {

template <class B>
Decoder<B>::Decoder(const config::ModelConfig& cfg, int max_len, int tp_size, int tp_rank,
                    comm::Communicator* tp, B* backend)
    : stage_(
          cfg, 1, max_len > 0 ? max_len : cfg.max_seq_len,
          [&] {
            ChunkPlacement p;
            p.tp_size = tp_size;
            p.tp_rank = tp_rank;
            return p;
          }(),
          tp, 1, backend, StageMode::inference),
      tp_size_(tp_size) {
  const std::int64_t Tm = stage_.planned_seq_len(), V = stage_.plan().dims.V;
  const auto i_gathered = host_.add("logits_gathered", {tp_size, Tm, V}, dtype_of<H>(), "call");
  const auto i_logits = host_.add("logits", {Tm, std::int64_t(cfg.vocab_size)}, dtype_of<H>(), "call");
  host_.allocate();
  gathered_ = host_.data<H>(i_gathered);
  logits_ = host_.data<H>(i_logits);
}

template <class B>
void Decoder<B>::truncate(int position) {
  STRATA_CHECK(position >= 0 && position <= pos_, "decoder: cannot truncate the cache of ", pos_,
               " tokens to ", position);
  pos_ = position;
}

template <class B>
const typename B::Host* Decoder<B>::forward(std::span<const std::int32_t> tokens, bool all_rows) {
  const int n = int(tokens.size());
  STRATA_CHECK(n >= 1, "decoder: forward needs at least one token");
  STRATA_CHECK(pos_ + n <= max_len(), "decoder: ", pos_, " cached + ", n, " new tokens exceed the cache of ",
               max_len(), " positions (model.max_seq_len ", config().max_seq_len, ")");
  const int rows = all_rows ? n : 1;
  stage_.forward_cached(tokens.data(), n, pos_, rows);
  pos_ += n;
  // Every rank's vocabulary slice [tp, rows, V_local] to the host, then the padding columns dropped.
  const std::int64_t Vl = stage_.plan().dims.V, Vg = vocab_size();
  stage_.backend().download_cast(gathered_, stage_.gathered_logits(rows), std::int64_t(tp_size_) * rows * Vl);
  for (int t = 0; t < tp_size_; ++t) {
    const std::int64_t v0 = std::int64_t(t) * Vl, nv = std::min<std::int64_t>(Vl, Vg - v0);
    if (nv <= 0) continue;
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy_n(gathered_ + (std::int64_t(t) * rows + r) * Vl, nv, logits_ + r * Vg + v0);
  }
  return logits_;
}

}  // namespace strata::model
