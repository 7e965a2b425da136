// The stage's forward and backward over any backend (stage.hpp has the math and the
// tensor/sequence-parallel communication). Included by the files that instantiate it:
// stage_cpu.cpp (CpuBackend<float>, CpuBackend<double>) and cuda/stage_cuda.cu (CudaBackend).
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "stage_split_impl.hpp"
#include "strata/core/error.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

namespace detail {
template <class U>
U* plan_ptr(const MemoryPlan& plan, std::size_t index) {
  return index == StagePlan::none ? nullptr : static_cast<U*>(plan.tensor(index).raw());
}
}  // namespace detail

template <class B>
Stage<B>::Stage(const config::ModelConfig& cfg, int batch, int seq_len, const ChunkPlacement& placement,
                comm::Communicator* tp, int slots, B* backend, StageMode mode)
    : plan_(cfg, placement, batch, seq_len, slots, B::spec(), mode),
      tp_(tp),
      be_(backend),
      d_(plan_.dims),
      rms_(cfg.norm == config::NormKind::rmsnorm) {
  const int tps = placement.tp_size;
  STRATA_CHECK(tps == 1 || (tp && tp->size() == tps), "tensor parallelism over ", tps,
               " ranks needs a TP communicator of that size");
  STRATA_CHECK(slots >= 1, "a model chunk needs at least one activation slot");
  if (!be_) {
    if constexpr (std::is_default_constructible_v<B>) {
      owned_backend_ = std::make_unique<B>();
      be_ = owned_backend_.get();
    } else {
      throw make_error("a ", B::spec().name, " stage needs its engine's backend");
    }
  }
  for (int l = d_.first_layer; l < d_.first_layer + d_.L; ++l)
    layer_ranges_.push_back(plan_.table.layer_range(l));
  if (d_.sp)
    for (const ParamInfo& p : plan_.table.entries())
      if (p.grad_needs_tp_sum) sp_sum_spans_.emplace_back(p.offset, p.numel);
  be_->allocate(plan_.weights);
  be_->allocate(plan_.acts);
  bind();
}

template <class B>
Stage<B>::~Stage() {
  // Work still queued on the backend's stream may read the buffers released after this.
  if (be_) be_->synchronize();
}

template <class B>
void Stage<B>::bind() {
  using detail::plan_ptr;
  const MemoryPlan& P = plan_.acts;
  params_ = plan_ptr<A>(plan_.weights, plan_.params);
  grads_ = plan_ptr<G>(plan_.weights, plan_.grads);
  w_ = model::bind(plan_.table.offsets(), params_);
  g_ = model::bind(plan_.table.offsets(), grads_);
  if (plan_.held_grads != StagePlan::none)
    held_ = model::bind(plan_.held_layout, plan_ptr<G>(plan_.weights, plan_.held_grads));
  for (const StagePlan::Slot& si : plan_.slots) {
    SlotBuffers sb{};
    for (std::size_t i : si.resid) sb.resid.push_back(plan_ptr<A>(P, i));
    for (const StagePlan::Layer& a : si.layers)
      sb.layers.push_back({plan_ptr<S>(P, a.ln1_mean), plan_ptr<S>(P, a.ln1_rstd), plan_ptr<A>(P, a.ln1),
                           plan_ptr<A>(P, a.q), plan_ptr<A>(P, a.k), plan_ptr<A>(P, a.v),
                           plan_ptr<S>(P, a.attn_saved), plan_ptr<A>(P, a.attn_y), plan_ptr<A>(P, a.mid),
                           plan_ptr<S>(P, a.ln2_mean), plan_ptr<S>(P, a.ln2_rstd), plan_ptr<A>(P, a.ln2),
                           plan_ptr<A>(P, a.fc), plan_ptr<A>(P, a.up), plan_ptr<A>(P, a.act),
                           plan_ptr<A>(P, a.dy_w2), plan_ptr<A>(P, a.dy_wo), plan_ptr<A>(P, a.cp_y)});
    sb.lnf_mean = plan_ptr<S>(P, si.lnf_mean);
    sb.lnf_rstd = plan_ptr<S>(P, si.lnf_rstd);
    sb.head_dx = plan_ptr<G>(P, si.head_dx);
    sb.tokens = plan_ptr<std::int32_t>(P, si.tokens);
    slots_.push_back(std::move(sb));
  }
  lnf_ = plan_ptr<A>(P, plan_.lnf);
  logits_ = plan_ptr<A>(P, plan_.logits);
  losses_ = plan_ptr<S>(P, plan_.losses);
  ce_max_ = plan_ptr<S>(P, plan_.ce_stats);
  if (ce_max_) {
    ce_sum_ = ce_max_ + d_.N;
    ce_target_ = ce_sum_ + d_.N;  // ce_sum_ and ce_target_ adjacent: one all-reduce for both
  }
  targets_ = plan_ptr<std::int32_t>(P, plan_.targets);
  d_resid_ = plan_ptr<G>(P, plan_.d_resid);
  d_resid_full_ = plan_ptr<G>(P, plan_.d_resid_full);
  d_out_ = plan_ptr<A>(P, plan_.d_out);
  d_ln_ = plan_ptr<A>(P, plan_.d_ln);
  partial_ = plan_ptr<A>(P, plan_.partial);
  d_attn_y_ = plan_ptr<A>(P, plan_.d_attn_y);
  d_q_ = plan_ptr<A>(P, plan_.d_q);
  d_k_ = plan_ptr<A>(P, plan_.d_k);
  d_v_ = plan_ptr<A>(P, plan_.d_v);
  d_fc_ = plan_ptr<A>(P, plan_.d_fc);
  d_up_ = plan_ptr<A>(P, plan_.d_up);
  d_act_ = plan_ptr<A>(P, plan_.d_act);
  attn_work_ = plan_ptr<S>(P, plan_.attn_work);
  rope_table_ = plan_ptr<S>(P, plan_.rope_table);
  logits_gathered_ = plan_ptr<A>(P, plan_.logits_gathered);
  for (std::size_t i : plan_.k_cache) k_cache_.push_back(plan_ptr<A>(P, i));
  for (std::size_t i : plan_.v_cache) v_cache_.push_back(plan_ptr<A>(P, i));
  cp_ring_ = plan_ptr<A>(P, plan_.cp_ring);
  cp_grad_ = plan_ptr<G>(P, plan_.cp_grad);
  cp_dq_ = plan_ptr<G>(P, plan_.cp_dq);
  cp_work_ = plan_ptr<S>(P, plan_.cp_work);
  cp_send_ = plan_ptr<A>(P, plan_.cp_send);
  cp_recv_ = plan_ptr<A>(P, plan_.cp_recv);
  if (rope_table_) be_->rope_init(rope_table_, plan_.cfg.max_seq_len, d_.HS, plan_.cfg.rope_theta);
}

template <class B>
std::pair<std::int64_t, std::int64_t> Stage<B>::layer_range(int layer) const {
  STRATA_CHECK(layer >= d_.first_layer && layer < d_.first_layer + d_.L, "layer ", layer,
               " is not in this model chunk");
  return layer_ranges_[std::size_t(layer - d_.first_layer)];
}

template <class B>
void Stage<B>::init_parameters(std::uint64_t seed) {
  const std::int64_t n = plan_.table.numel();
  if constexpr (std::is_same_v<A, H>) {
    if (B::spec().host_memory) {
      init_parameter_values(plan_.table, seed, params_);
      return;
    }
  }
  std::vector<H> host(static_cast<std::size_t>(n));
  init_parameter_values(plan_.table, seed, host.data());
  upload_parameters(host.data());
}

template <class B>
void Stage<B>::upload_parameters(const H* host) {
  be_->upload_cast(params_, host, plan_.table.numel());
  be_->synchronize();
}

template <class B>
void Stage<B>::download_parameters(H* host) const {
  be_->download_cast(host, params_, plan_.table.numel());
}

template <class B>
void Stage<B>::set_seq_len(int seq_len) {
  STRATA_CHECK(seq_len >= 1 && seq_len <= plan_.dims.T, "sequence length ", seq_len, " is outside [1, ",
               plan_.dims.T, "], the length this model chunk was planned for");
  STRATA_CHECK(!context_parallel() || seq_len == plan_.dims.T, "context parallelism runs the planned ",
               "sequence length only (", plan_.dims.T, " local positions), not ", seq_len);
  const std::int64_t N = std::int64_t(d_.B) * seq_len;
  const int tps = plan_.place.tp_size;
  STRATA_CHECK(!plan_.place.sequence_parallel || N % tps == 0, "sequence parallelism needs batch x seq_len (",
               d_.B, " x ", seq_len, ") divisible by tp (", tps, ")");
  d_.T = seq_len;
  d_.N = N;
  d_.Nsp = plan_.place.sequence_parallel ? N / tps : N;
  // ce_sum_ and ce_target_ stay adjacent for their single all-reduce of 2 N values.
  if (ce_sum_) ce_target_ = ce_sum_ + d_.N;
}

template <class B>
void Stage<B>::zero_grads() {
  if (grads_) be_->fill(grads_, G(0), plan_.table.numel());  // ZeRO-2: the engine's buffers
  if (plan_.held_grads != StagePlan::none) {  // zb_h1 with ZeRO-2/3 (empty again after each step's last W)
    const Tensor held = plan_.weights.tensor(plan_.held_grads);
    be_->fill(static_cast<G*>(held.raw()), G(0), held.numel());
  }
}

template <class B>
void Stage<B>::reduce_sequence_parallel_grads(std::int64_t begin, std::int64_t end) {
  reduce_sequence_parallel_grads_at(grads_, begin, end);
}

template <class B>
void Stage<B>::reduce_sequence_parallel_grads_at(G* base, std::int64_t begin, std::int64_t end) {
  if (!d_.sp) return;
  for (const auto& [offset, numel] : sp_sum_spans_)
    if (offset >= begin && offset < end) tp_->all_reduce(base + offset, std::size_t(numel), dtype_of<G>());
}

template <class B>
void Stage<B>::bind_layer_grads(int layer, G* base) {
  rebind_layer(g_, plan_.table.offsets(), std::size_t(layer - d_.first_layer), base);
}

template <class B>
void Stage<B>::bind_edge_grads(G* edges, std::int64_t prefix_end, std::int64_t suffix_begin) {
  rebind_edges(g_, plan_.table.offsets(), edges, prefix_end, suffix_begin);
}

template <class B>
void Stage<B>::bind_layer_params(int layer, A* base) {
  rebind_layer(w_, plan_.table.offsets(), std::size_t(layer - d_.first_layer), base);
}

template <class B>
void Stage<B>::bind_edge_params(A* edges, std::int64_t prefix_end, std::int64_t suffix_begin) {
  rebind_edges(w_, plan_.table.offsets(), edges, prefix_end, suffix_begin);
}

template <class B>
AttentionDims Stage<B>::attention_dims() const {
  return {d_.B,  d_.T, d_.NH, d_.NKV,
          d_.HS, d_.Q, d_.KV, plan_.cfg.attention == config::AttentionKind::causal};
}

// ---- tensor-parallel communication ----------------------------------------------------

template <class B>
void Stage<B>::norm_into_full(A* full, S* mean, S* rstd, const A* x, const A* w, const A* b,
                              std::int64_t rows) {
  A* y = d_.sp ? full + std::int64_t(plan_.place.tp_rank) * rows * d_.C : full;
  be_->norm_forward(rms_, y, mean, rstd, x, w, b, rows, d_.C, plan_.cfg.norm_eps);
  if (d_.sp) tp_->all_gather(y, full, std::size_t(rows * d_.C), dtype_of<A>());
}

template <class B>
void Stage<B>::reduce_from_tp(A* partial, A* out) {
  if (plan_.place.tp_size == 1) return;  // partial == out
  if (d_.sp)
    tp_->reduce_scatter(partial, out, std::size_t(d_.Nsp * d_.C), dtype_of<A>());
  else
    tp_->all_reduce(out, std::size_t(d_.N * d_.C), dtype_of<A>());
}

template <class B>
void Stage<B>::reduce_grad_to_shard(A* partial_full, A* shard) {
  if (plan_.place.tp_size == 1) return;  // partial_full == shard
  if (d_.sp)
    tp_->reduce_scatter(partial_full, shard, std::size_t(d_.Nsp * d_.C), dtype_of<A>());
  else
    tp_->all_reduce(shard, std::size_t(d_.N * d_.C), dtype_of<A>());
}

template <class B>
const typename B::Act* Stage<B>::grad_out_full() {
  const std::size_t n = std::size_t(d_.Nsp * d_.C);
  if constexpr (std::is_same_v<A, G>) {
    if (!d_.sp) return d_resid_;
    tp_->all_gather(d_resid_, d_out_, n, dtype_of<A>());
    return d_out_;
  } else {
    // This rank's rows of the [N, C] buffer in the activation type, then (SP) all-gathered in place.
    A* mine = d_out_ + (d_.sp ? std::int64_t(plan_.place.tp_rank) * d_.Nsp * d_.C : 0);
    be_->cast_grad_to_act(mine, d_resid_, d_.Nsp * d_.C);
    if (d_.sp) tp_->all_gather(mine, d_out_, n, dtype_of<A>());
    return d_out_;
  }
}

// ---- forward ----------------------------------------------------------------------------

template <class B>
void Stage<B>::upload_tokens(std::int32_t* dst, const std::int32_t* tokens, std::int64_t n, bool targets) {
  // Token ids must be in the vocabulary; a target may also be negative (no loss at that row).
  const int vocab = plan_.cfg.vocab_size;
  for (std::int64_t i = 0; i < n; ++i)
    STRATA_CHECK(tokens[i] < vocab && (tokens[i] >= 0 || targets), targets ? "target" : "token", " id ",
                 tokens[i], " at position ", i, " is outside the vocabulary [0, ", vocab, ")");
  be_->upload(dst, tokens, std::size_t(n) * sizeof(std::int32_t));
}

template <class B>
void Stage<B>::embed_forward(const SlotBuffers& s, std::int64_t pos) {
  // Each TP rank looks up its vocabulary slice (other tokens give zero rows); the partial
  // embeddings are summed over the group. Positions are added once, by TP rank 0.
  A* out = s.resid[0];
  A* partial = d_.sp ? partial_ : out;
  be_->embedding_forward(partial, s.tokens, w_.wte, d_.N, d_.C, d_.vocab_start, std::int64_t(d_.V));
  if (w_.wpe && plan_.place.tp_rank == 0) position_embedding_rows(partial, pos);
  reduce_from_tp(partial, out);
}

template <class B>
void Stage<B>::layer_forward(const SlotBuffers& s, int li, const Cache* cache) {
  const LayerView<A>& w = w_.layers[std::size_t(li)];
  const LayerActs& a = s.layers[std::size_t(li)];
  const A* x = s.resid[std::size_t(li)];
  A* out = s.resid[std::size_t(li) + 1];
  const std::int64_t N = d_.N, Ns = d_.Nsp, C = d_.C, Q = d_.Q, KV = d_.KV, F = d_.F;
  const std::int64_t pos = cache ? cache->pos : 0;
  // attention block: column-parallel Q, K, V over local heads (keys and values straight into
  // the cache at rows pos.. in inference), row-parallel output
  norm_into_full(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.attn_norm_w, w.attn_norm_b, Ns);
  A* k = cache ? cache->k + pos * KV : a.k;
  A* v = cache ? cache->v + pos * KV : a.v;
  be_->linear_forward(a.q, a.ln1, w.wq, w.bq, N, C, Q);
  be_->linear_forward(k, a.ln1, w.wk, w.bk, N, C, KV);
  be_->linear_forward(v, a.ln1, w.wv, w.bv, N, C, KV);
  if (plan_.cfg.positions == config::PositionKind::rope) {
    rope_rows(false, a.q, d_.NH, pos);
    rope_rows(false, k, d_.NKV, pos);
  }
  if (ulysses())
    ulysses_attention_forward(a);
  else if (context_parallel())
    ring_attention_forward(a);
  else if (cache)
    be_->attention_cached(a.attn_y, attn_work_, a.q, cache->k, cache->v, pos, attention_dims());
  else
    be_->attention_forward(a.attn_y, a.attn_saved, a.q, a.k, a.v, attention_dims());
  A* partial = d_.sp ? partial_ : a.mid;
  be_->linear_forward(partial, a.attn_y, w.wo, static_cast<const A*>(nullptr), N, Q, C);
  reduce_from_tp(partial, a.mid);
  if (w.bo) be_->add_bias(a.mid, w.bo, Ns, C);
  be_->accumulate(a.mid, x, Ns * C);  // mid = x + attn
  // MLP block: column-parallel up (and gate), row-parallel down
  norm_into_full(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.mlp_norm_w, w.mlp_norm_b, Ns);
  be_->linear_forward(a.fc, a.ln2, w.w1, w.b1, N, C, F);
  if (plan_.cfg.mlp == config::MlpKind::gelu) {
    be_->gelu_forward(a.act, a.fc, N * F);
  } else {
    be_->linear_forward(a.up, a.ln2, w.w3, w.b3, N, C, F);
    be_->swiglu_forward(a.act, a.fc, a.up, N * F);
  }
  partial = d_.sp ? partial_ : out;
  be_->linear_forward(partial, a.act, w.w2, static_cast<const A*>(nullptr), N, F, C);
  reduce_from_tp(partial, out);
  if (w.b2) be_->add_bias(out, w.b2, Ns, C);
  be_->accumulate(out, a.mid, Ns * C);  // out = mid + mlp
}

template <class B>
void Stage<B>::forward_chunk(int slot, const std::int32_t* tokens, const A* input) {
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  if (plan_.place.has_embedding) {
    upload_tokens(s.tokens, tokens, d_.N, false);
    embed_forward(s, 0);
  } else {
    be_->copy(s.resid[0], input, d_.Nsp * d_.C);
  }
  for (int l = 0; l < d_.L; ++l) {
    if (on_layer_forward_begin) on_layer_forward_begin(d_.first_layer + l);
    layer_forward(s, l);
  }
}

template <class B>
const typename B::Act* Stage<B>::output(int slot) const {
  return slots_.at(std::size_t(slot)).resid[std::size_t(d_.L)];
}

template <class B>
const typename B::Act* Stage<B>::logits() const {
  return logits_;
}

template <class B>
void Stage<B>::head_forward(const SlotBuffers& s, const A* x, std::int64_t rows, std::int64_t rows_sp) {
  norm_into_full(lnf_, s.lnf_mean, s.lnf_rstd, x, w_.final_norm_w, w_.final_norm_b, rows_sp);
  be_->linear_forward(logits_, lnf_, w_.head, static_cast<const A*>(nullptr), rows, d_.C, std::int64_t(d_.V));
}

template <class B>
void Stage<B>::loss_into(int slot, const std::int32_t* targets, S grad_scale, bool with_grad,
                         H* host_losses) {
  static_assert(std::is_same_v<S, H>, "the losses are downloaded as they are");
  STRATA_CHECK(plan_.place.has_head && targets_, "loss() called on a model chunk without the output layer");
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  upload_tokens(targets_, targets, d_.N, true);
  head_forward(s, s.resid[std::size_t(d_.L)], d_.N, d_.Nsp);
  const std::int64_t N = d_.N, V = d_.V;
  if (plan_.place.tp_size == 1) {
    be_->cross_entropy(logits_, losses_, targets_, grad_scale, with_grad, N, d_.vocab_real, V);
  } else {
    // Vocab-parallel: the logits stay sharded; two all-reduces combine the row statistics
    // (the max, then the sum of exponentials and the target logit).
    be_->ce_max(ce_max_, logits_, N, d_.vocab_real, V);
    tp_->all_reduce(ce_max_, std::size_t(N), dtype_of<S>(), comm::ReduceOp::max);
    be_->ce_sumexp(ce_sum_, ce_target_, logits_, ce_max_, targets_, N, d_.vocab_real, V, d_.vocab_start);
    tp_->all_reduce(ce_sum_, std::size_t(2 * N), dtype_of<S>());
    be_->ce_finish(logits_, losses_, ce_max_, ce_sum_, ce_target_, targets_, grad_scale, with_grad, N,
                   d_.vocab_real, V, d_.vocab_start);
  }
  be_->download(host_losses, losses_, std::size_t(N) * sizeof(S));
  if (with_grad) head_backward(s);
}

template <class B>
LossSum Stage<B>::loss(int slot, const std::int32_t* targets, S grad_scale, bool with_grad) {
  std::vector<H> losses(static_cast<std::size_t>(d_.N));
  loss_into(slot, targets, grad_scale, with_grad, losses.data());
  be_->synchronize();
  LossSum sum;
  for (std::int64_t i = 0; i < d_.N; ++i) {
    if (targets[i] < 0) continue;
    sum.sum += double(losses[std::size_t(i)]);
    ++sum.count;
  }
  return sum;
}

// ---- backward ---------------------------------------------------------------------------

template <class B>
void Stage<B>::head_backward(const SlotBuffers& s) {
  // logits = nf(x) W^T with the logits now holding their gradient. The head's backward runs
  // right after the loss so one logits buffer serves every slot; the gradient of the
  // chunk's output is kept per slot until backward_chunk.
  A* dx_full = d_.sp ? partial_ : d_ln_;
  be_->linear_backward(dx_full, false, g_.head, static_cast<G*>(nullptr), logits_, lnf_, w_.head, d_.N, d_.C,
                       std::int64_t(d_.V));
  reduce_grad_to_shard(dx_full, d_ln_);
  be_->fill(s.head_dx, G(0), d_.Nsp * d_.C);
  be_->norm_backward(rms_, s.head_dx, g_.final_norm_w, g_.final_norm_b, d_ln_, s.resid[std::size_t(d_.L)],
                     w_.final_norm_w, s.lnf_mean, s.lnf_rstd, d_.Nsp, d_.C);
}

template <class B>
void Stage<B>::layer_backward(const SlotBuffers& s, int li, bool split) {
  const LayerView<A>& w = w_.layers[std::size_t(li)];
  // split with ZeRO-2/3: the B pass's gradients wait in held_ for the layer's W pass
  const LayerView<G>& g = (split && !held_.layers.empty() ? held_ : g_).layers[std::size_t(li)];
  const LayerView<G> deferred{};  // split: the weight GEMMs and column-parallel biases wait for W
  const LayerView<G>& gw = split ? deferred : g;
  const LayerActs& a = s.layers[std::size_t(li)];
  const A* x = s.resid[std::size_t(li)];
  const std::int64_t N = d_.N, Ns = d_.Nsp, C = d_.C, Q = d_.Q, KV = d_.KV, F = d_.F;
  A* dx_full = d_.sp ? partial_ : d_ln_;  // partial gradient of a column-parallel layer's input
  // d_resid holds dL/d(out). out = mid + W2 act + b2: the identity path leaves d_resid as the
  // first part of dL/d(mid); the MLP path is added to it by the norm backward.
  if (g.b2) be_->bias_grad(g.b2, d_resid_, Ns, C);
  const A* d_out = grad_out_full();
  if (split) be_->copy(a.dy_w2, d_out, N * C);
  be_->linear_backward(d_act_, false, gw.w2, static_cast<G*>(nullptr), d_out, a.act, w.w2, N, F, C);
  if (plan_.cfg.mlp == config::MlpKind::gelu)
    be_->gelu_backward(d_fc_, d_act_, a.fc, N * F);
  else
    be_->swiglu_backward(d_fc_, d_up_, d_act_, a.fc, a.up, N * F);
  if (split) {  // fc and up are read no more: they keep their gradients for W
    be_->copy(a.fc, d_fc_, N * F);
    if (a.up) be_->copy(a.up, d_up_, N * F);
  }
  be_->linear_backward(dx_full, false, gw.w1, gw.b1, d_fc_, a.ln2, w.w1, N, C, F);
  if (plan_.cfg.mlp == config::MlpKind::swiglu)
    be_->linear_backward(dx_full, true, gw.w3, gw.b3, d_up_, a.ln2, w.w3, N, C, F);
  reduce_grad_to_shard(dx_full, d_ln_);
  be_->norm_backward(rms_, d_resid_, g.mlp_norm_w, g.mlp_norm_b, d_ln_, a.mid, w.mlp_norm_w, a.ln2_mean,
                     a.ln2_rstd, Ns, C);
  // mid = x + Wo attn(...) + bo: likewise d_resid becomes dL/dx.
  if (g.bo) be_->bias_grad(g.bo, d_resid_, Ns, C);
  d_out = grad_out_full();
  if (split) be_->copy(a.dy_wo, d_out, N * C);
  be_->linear_backward(d_attn_y_, false, gw.wo, static_cast<G*>(nullptr), d_out, a.attn_y, w.wo, N, Q, C);
  if (ulysses())
    ulysses_attention_backward(a);
  else if (context_parallel())
    ring_attention_backward(a);
  else
    be_->attention_backward(d_q_, d_k_, d_v_, attn_work_, d_attn_y_, a.attn_y, a.attn_saved, a.q, a.k, a.v,
                            attention_dims());
  if (plan_.cfg.positions == config::PositionKind::rope) {
    rope_rows(true, d_q_, d_.NH, 0);
    rope_rows(true, d_k_, d_.NKV, 0);
  }
  if (split) {  // likewise q, k and v
    be_->copy(a.q, d_q_, N * Q);
    be_->copy(a.k, d_k_, N * KV);
    be_->copy(a.v, d_v_, N * KV);
  }
  be_->linear_backward(dx_full, false, gw.wq, gw.bq, d_q_, a.ln1, w.wq, N, C, Q);
  be_->linear_backward(dx_full, true, gw.wk, gw.bk, d_k_, a.ln1, w.wk, N, C, KV);
  be_->linear_backward(dx_full, true, gw.wv, gw.bv, d_v_, a.ln1, w.wv, N, C, KV);
  reduce_grad_to_shard(dx_full, d_ln_);
  be_->norm_backward(rms_, d_resid_, g.attn_norm_w, g.attn_norm_b, d_ln_, x, w.attn_norm_w, a.ln1_mean,
                     a.ln1_rstd, Ns, C);
}

template <class B>
void Stage<B>::embed_backward(const SlotBuffers& s) {
  // The whole [N, C] gradient on every TP rank; each rank adds into its vocabulary slice.
  const G* d = d_resid_;
  if (d_.sp) {
    G* full = nullptr;
    if constexpr (std::is_same_v<A, G>)
      full = d_out_;
    else
      full = d_resid_full_;
    tp_->all_gather(d_resid_, full, std::size_t(d_.Nsp * d_.C), dtype_of<G>());
    d = full;
  }
  be_->embedding_backward(g_.wte, d, s.tokens, d_.N, d_.C, d_.vocab_start, std::int64_t(d_.V));
  if (g_.wpe) position_embedding_grad_rows(d);
}

template <class B>
void Stage<B>::backward_chunk(int slot, const G* output_grad) {
  const SlotBuffers& s = slots_.at(std::size_t(slot));
  be_->copy(d_resid_, plan_.place.has_head ? s.head_dx : output_grad, d_.Nsp * d_.C);
  const bool recompute = plan_.cfg.recompute == config::RecomputeKind::full;
  for (int l = d_.L - 1; l >= 0; --l) {
    if (on_layer_backward_begin) on_layer_backward_begin(d_.first_layer + l);
    if (recompute) layer_forward(s, l);  // rebuild this layer's activations from its input
    layer_backward(s, l);
    if (on_layer_grads_ready) on_layer_grads_ready(d_.first_layer + l);
  }
  if (plan_.place.has_embedding) embed_backward(s);
}

// ---- one rank ---------------------------------------------------------------------------

template <class B>
LossSum Stage<B>::forward(const std::int32_t* tokens, const std::int32_t* targets) {
  forward_chunk(0, tokens, nullptr);
  return loss(0, targets, S(0), false);
}

template <class B>
LossSum Stage<B>::forward_backward(const std::int32_t* tokens, const std::int32_t* targets, S grad_scale) {
  forward_chunk(0, tokens, nullptr);
  const LossSum l = loss(0, targets, grad_scale, true);
  backward_chunk(0, nullptr);
  return l;
}

// ---- inference --------------------------------------------------------------------------

template <class B>
void Stage<B>::forward_cached(const std::int32_t* tokens, int n, int pos, int rows) {
  STRATA_CHECK(plan_.mode == StageMode::inference, "forward_cached needs a stage planned for inference");
  STRATA_CHECK(n >= 1 && pos >= 0 && pos + n <= plan_.dims.T, "decoder: ", pos, " cached + ", n,
               " new tokens exceed the cache of ", plan_.dims.T, " positions");
  STRATA_CHECK(rows >= 1 && rows <= n, "decoder: logits of ", rows, " rows asked of ", n);
  // This call's rows: one sequence of n tokens.
  d_.T = n;
  d_.N = n;
  d_.Nsp = n;
  const SlotBuffers& s = slots_.front();
  if (plan_.place.has_embedding) {
    upload_tokens(s.tokens, tokens, n, false);
    embed_forward(s, pos);
  }
  for (int l = 0; l < d_.L; ++l) {
    const Cache cache{k_cache_[std::size_t(l)], v_cache_[std::size_t(l)], pos};
    layer_forward(s, l, &cache);
  }
  if (plan_.place.has_head) {
    const A* x = s.resid[std::size_t(d_.L)] + std::int64_t(n - rows) * d_.C;
    head_forward(s, x, rows, rows);
  }
}

template <class B>
const typename B::Act* Stage<B>::gathered_logits(int rows) {
  if (plan_.place.tp_size == 1) return logits_;
  tp_->all_gather(logits_, logits_gathered_, std::size_t(std::int64_t(rows) * d_.V), dtype_of<A>());
  return logits_gathered_;
}

}  // namespace strata::model

#include "ring_attention_impl.hpp"     // NOLINT(build/include_order): Stage<B>'s context-parallel members
#include "ulysses_attention_impl.hpp"  // NOLINT(build/include_order): the same, Ulysses mode
