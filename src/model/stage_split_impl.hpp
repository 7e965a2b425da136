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
//
// With ZeRO-2/3 the stage has no gradient buffer: the engine binds a layer's gradients to a
// unit buffer that is reduce-scattered over DP right after the layer's W pass
// (on_layer_weight_begin, on_layer_grads_ready). W(mb, l) runs after B passes of later
// micro-batches, so B cannot write into that unit; it adds its gradients of the layer (the
// norms', the row-parallel biases': input_pass_tensors, 6 x C per layer at most) into a
// small buffer held for the step (held_, "grads.held"), and each W adds what the layer's B
// passes have held since its previous W into the unit and clears it. The schedule runs B(mb, l)
// before W(mb, l) and the W passes in micro-batch order, so every B term reaches exactly one
// unit, and the step's last W of a layer follows every B of it: nothing is left held. (The
// alternatives: a reduce-scatter of a unit after B too doubles the layer's DP traffic; a unit
// kept from B to W holds a layer-sized buffer per micro-batch in between, up to pp of them,
// what ZeRO-2 exists to avoid.) The sums differ from the fused backward's only
// in grouping (a unit may carry several micro-batches' B terms), like ZeRO-2's per-micro-batch
// reduce-scatter itself. W reads no parameters (dW = dY^T X; layer_weight_grads passes none), so
// ZeRO-3 gathers the layer's parameters for B only.
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
  for (int l = d_.L - 1; l >= 0; --l) {
    if (on_layer_backward_begin) on_layer_backward_begin(d_.first_layer + l);
    layer_backward(s, l, true);
  }
  if (plan_.place.has_embedding) embed_backward(s);
}

template <class B>
void Stage<B>::backward_weight_chunk(int slot) {
  STRATA_CHECK(plan_.place.split_backward && plan_.mode == StageMode::train,
               "backward_weight_chunk needs a training stage planned with a split backward (zb_h1)");
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  for (int l = d_.L - 1; l >= 0; --l) {
    if (on_layer_weight_begin) on_layer_weight_begin(d_.first_layer + l);
    layer_weight_grads(s, l);
    if (!held_.layers.empty()) add_held_grads(l);
    if (on_layer_grads_ready) on_layer_grads_ready(d_.first_layer + l);
  }
}

template <class B>
void Stage<B>::add_held_grads(int li) {
  const LayerView<G>& held = held_.layers[std::size_t(li)];
  const LayerView<G>& g = g_.layers[std::size_t(li)];  // the layer's unit buffer
  for (auto field : input_pass_grads<G>) {
    if (!(held.*field)) continue;
    be_->accumulate(g.*field, held.*field, d_.C);
    be_->fill(held.*field, G(0), d_.C);
  }
}

template <class B>
void Stage<B>::layer_weight_grads(const SlotBuffers& s, int li) {
  const LayerView<G>& g = g_.layers[std::size_t(li)];
  const LayerActs& a = s.layers[std::size_t(li)];
  const std::int64_t N = d_.N, C = d_.C, Q = d_.Q, KV = d_.KV, F = d_.F;
  A* const no_dx = nullptr;
  G* const no_db = nullptr;
  // Without dX both backends' linear_backward read no weight (CPU kernels::cpu::linear_backward,
  // CUDA Blas::linear_backward: W enters only the dX GEMM): none is passed, so under ZeRO-3 the
  // W pass needs no gathered parameters.
  const A* const no_w = nullptr;
  // MLP: down (row-parallel, its bias in B), then up (and gate), column-parallel with biases
  be_->linear_backward(no_dx, false, g.w2, no_db, a.dy_w2, a.act, no_w, N, F, C);
  be_->linear_backward(no_dx, false, g.w1, g.b1, a.fc, a.ln2, no_w, N, C, F);
  if (plan_.cfg.mlp == config::MlpKind::swiglu)
    be_->linear_backward(no_dx, false, g.w3, g.b3, a.up, a.ln2, no_w, N, C, F);
  // attention: output projection (row-parallel), then Q, K, V (column-parallel)
  be_->linear_backward(no_dx, false, g.wo, no_db, a.dy_wo, a.attn_y, no_w, N, Q, C);
  be_->linear_backward(no_dx, false, g.wq, g.bq, a.q, a.ln1, no_w, N, C, Q);
  be_->linear_backward(no_dx, false, g.wk, g.bk, a.k, a.ln1, no_w, N, C, KV);
  be_->linear_backward(no_dx, false, g.wv, g.bv, a.v, a.ln1, no_w, N, C, KV);
}

}  // namespace strata::model
