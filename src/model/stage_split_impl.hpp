// The stage's backward split in two passes for the zero-bubble schedule zb_h1 (Qi et al. 2023,
// "Zero Bubble Pipeline Parallelism", section 2): B, the input gradient, which the previous
// stage waits for, and W, the weight gradient, which nothing waits for, so the schedule can
// run it where the pipeline would idle. For each linear layer Y = X W^T (+ b):
//   B: dX = dY W                        (layer_backward with split: the GEMM without dW)
//   W: dW += dY^T X,  db += sum_rows dY  (layer_weight_grads)
// B keeps what W reads in the micro-batch's slot: the GEMM inputs are the saved activations
// (ln1, attn_y, ln2, act); the output gradients of the column-parallel GEMMs go where the
// activations B has consumed were (q, k, v <- dQ, dK, dV after RoPE's backward; fc, up <- their
// gradients), those of the two row-parallel GEMMs into two [N, C] buffers per layer (dy_w2,
// dy_wo; StagePlan adds them when place.split_backward). The norms' weight and bias gradients,
// the row-parallel biases and the embedding stay in B: their kernels produce them with dX at
// O(N C). W costs what the fused backward's dW GEMMs cost; B about a third of the backward
// less. Each gradient gets the same terms as from backward_chunk, in the same micro-batch
// order, so the sums are those of the fused backward.
// Included by stage_impl.hpp.
#pragma once
#include "strata/core/error.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

template <class B>
void Stage<B>::backward_input_chunk(int slot, const G* output_grad) {
  STRATA_CHECK(plan_.place.split_backward && plan_.mode == StageMode::train,
               "backward_input_chunk needs a training stage planned with a split backward (zb_h1)");
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  be_->copy(d_resid_, plan_.place.has_head ? s.head_dx : output_grad, d_.Nsp * d_.C);
  for (int l = d_.L - 1; l >= 0; --l) layer_backward(s, l, true);
  if (plan_.place.has_embedding) embed_backward(s);
}

template <class B>
void Stage<B>::backward_weight_chunk(int slot) {
  STRATA_CHECK(plan_.place.split_backward && plan_.mode == StageMode::train,
               "backward_weight_chunk needs a training stage planned with a split backward (zb_h1)");
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  for (int l = d_.L - 1; l >= 0; --l) {
    layer_weight_grads(s, l);
    if (on_layer_grads_ready) on_layer_grads_ready(d_.first_layer + l);
  }
}

template <class B>
void Stage<B>::layer_weight_grads(const SlotBuffers& s, int li) {
  const LayerView<A>& w = w_.layers[std::size_t(li)];
  const LayerView<G>& g = g_.layers[std::size_t(li)];
  const LayerActs& a = s.layers[std::size_t(li)];
  const std::int64_t N = d_.N, C = d_.C, Q = d_.Q, KV = d_.KV, F = d_.F;
  A* const no_dx = nullptr;
  G* const no_db = nullptr;
  // MLP: down (row-parallel, its bias in B), then up (and gate), column-parallel with biases
  be_->linear_backward(no_dx, false, g.w2, no_db, a.dy_w2, a.act, w.w2, N, F, C);
  be_->linear_backward(no_dx, false, g.w1, g.b1, a.fc, a.ln2, w.w1, N, C, F);
  if (plan_.cfg.mlp == config::MlpKind::swiglu)
    be_->linear_backward(no_dx, false, g.w3, g.b3, a.up, a.ln2, w.w3, N, C, F);
  // attention: output projection (row-parallel), then Q, K, V (column-parallel)
  be_->linear_backward(no_dx, false, g.wo, no_db, a.dy_wo, a.attn_y, w.wo, N, Q, C);
  be_->linear_backward(no_dx, false, g.wq, g.bq, a.q, a.ln1, w.wq, N, C, Q);
  be_->linear_backward(no_dx, false, g.wk, g.bk, a.k, a.ln1, w.wk, N, C, KV);
  be_->linear_backward(no_dx, false, g.wv, g.bv, a.v, a.ln1, w.wv, N, C, KV);
}

}  // namespace strata::model
