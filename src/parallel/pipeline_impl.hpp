// PipelineEngine<B> (pipeline.hpp) over any backend; included by the files that instantiate
// it: engine_cpu.cpp (CpuBackend<float>) and cuda/engine_cuda.cu (CudaBackend).
#pragma once
#include <climits>
#include <cmath>
#include <sstream>
#include <type_traits>

#include "context_parallel.hpp"
#include "distributed_optimizer_impl.hpp"
#include "strata/core/error.hpp"
#include "strata/parallel/pipeline.hpp"

namespace strata::parallel {

using Kind = PipelineAction::Kind;

template <class B>
PipelineEngine<B>::PipelineEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                                  const config::OptimConfig& optim, int seq_len, int microbatches,
                                  comm::RankGrid& grid, std::unique_ptr<B> backend)
    : grid_(grid),
      be_(std::move(backend)),
      plan_(
          plan_engine(model, parallel, optim, seq_len, microbatches, grid.shape(), grid.coord(), B::spec())),
      pp_(grid.shape().pp),
      stage_(grid.coord().pp_rank),
      v_(parallel.virtual_stages),
      m_(microbatches),
      act_elems_(plan_.act_elems) {
  if (!be_) {
    if constexpr (std::is_default_constructible_v<B>)
      be_ = std::make_unique<B>();
    else
      throw make_error("a ", B::spec().name, " engine needs its backend");
  }
  groups_ = grid.device_groups(B::spec().device, be_->stream_handle());
  // 4. allocate: every chunk's stage and optimizer, the pipeline buffers, the host staging.
  for (const ChunkPlan& cp : plan_.chunks) {
    chunks_.push_back(std::make_unique<model::Stage<B>>(
        model, parallel.micro_batch_size, seq_len / cp.place.cp_size, cp.place,
        cp.place.tp_size > 1 ? groups_.tp : nullptr, cp.slots, be_.get()));
    optimizers_.push_back(std::make_unique<DistributedOptimizer<B>>(optim, cp.sharding, *groups_.dp, *be_));
    if (cp.place.cp_size > 1) chunks_.back()->set_context_parallel_group(groups_.cp);
  }
  be_->allocate(plan_.pipeline);
  be_->allocate_host(plan_.host);
  act_in_.resize(std::size_t(v_));
  grad_in_.resize(std::size_t(v_));
  grad_out_.resize(std::size_t(v_));
  act_send_.resize(std::size_t(v_));
  grad_send_.resize(std::size_t(v_));
  for (int c = 0; c < v_; ++c) {
    for (const EnginePlan::SlotBuffers& s : plan_.exchange[std::size_t(c)]) {
      act_in_[std::size_t(c)].push_back(static_cast<A*>(plan_.pipeline.tensor(s.act_in).raw()));
      grad_in_[std::size_t(c)].push_back(static_cast<G*>(plan_.pipeline.tensor(s.grad_in).raw()));
      grad_out_[std::size_t(c)].push_back(static_cast<G*>(plan_.pipeline.tensor(s.grad_out).raw()));
    }
    act_send_[std::size_t(c)].resize(plan_.exchange[std::size_t(c)].size());
    grad_send_[std::size_t(c)].resize(plan_.exchange[std::size_t(c)].size());
  }
  host_tokens_ = plan_.host.data<std::int32_t>(plan_.host_tokens);
  host_targets_ = plan_.host.data<std::int32_t>(plan_.host_targets);
  host_losses_ = plan_.host.data<float>(plan_.host_losses);
  filled_.assign(std::size_t(m_), false);
  loss_rows_.assign(std::size_t(m_), false);
  last_backward_mb_.assign(std::size_t(v_), -1);
  final_backward_.assign(std::size_t(v_), false);
  final_from_.assign(std::size_t(v_), INT64_MAX);
  for (int c = 0; c < v_; ++c)  // set once: no std::function is built in the step loop
    chunks_[std::size_t(c)]->on_layer_grads_ready = [this, c](int layer) { layer_grads_ready(c, layer); };
  for (int c = 0; c < v_; ++c)
    if (plan_.chunks[std::size_t(c)].sharding.grads_sharded()) bind_sharded_grads(c);
  for (const auto& a : plan_.schedule)
    if (a.kind != Kind::forward) last_backward_mb_[std::size_t(a.chunk)] = a.microbatch;
  timed_.reserve(4 * plan_.schedule.size() + 8);
  // The tied embedding's copies on this rank: embed.wte in the first virtual stage's chunk and
  // its copy in the last's (both only when pp * v > 1 and the embeddings are tied).
  if (model.tied_embeddings && pp_ * v_ > 1) {
    if (chunks_.front()->placement().has_embedding) tied_first_ = chunks_.front()->table().find("embed.wte");
    if (chunks_.back()->placement().has_head) tied_last_ = chunks_.back()->table().find("embed.wte");
  }
  // The engine holds exactly the plan the dry run and the planner print.
  for (std::size_t c = 0; c < chunks_.size(); ++c)
    STRATA_CHECK(chunks_[c]->plan().bytes() == plan_.chunks[c].stage.bytes(), "engine: chunk ", c,
                 " allocated a plan other than plan_engine's");
}

template <class B>
PipelineEngine<B>::~PipelineEngine() {
  // Let queued work finish, then release the device communicators, which enqueue on this
  // engine's stream, before the stream goes with the backend.
  if (be_) be_->synchronize();
  grid_.release_device_groups();
}

template <class B>
void PipelineEngine<B>::init_parameters(std::uint64_t seed) {
  be_->activate();
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    if (plan_.chunks[c].sharding.params_sharded()) {  // ZeRO-3: this rank's pieces only
      std::vector<float> host(static_cast<std::size_t>(chunks_[c]->table().numel()));
      model::init_parameter_values(chunks_[c]->table(), seed, host.data());
      optimizers_[c]->set_param_shard(host.data());
      continue;
    }
    if (!B::spec().master_weights) {
      chunks_[c]->init_parameters(seed);
      continue;
    }
    // Drawn once on the host: the master weights (fp32) and the compute copy cast from them.
    std::vector<float> host(static_cast<std::size_t>(chunks_[c]->table().numel()));
    model::init_parameter_values(chunks_[c]->table(), seed, host.data());
    chunks_[c]->upload_parameters(host.data());
    optimizers_[c]->set_master(host.data());
  }
}

template <class B>
void PipelineEngine<B>::time(Timing kind, const typename B::Mark& start) {
  timed_.push_back({kind, start, be_->mark()});
}

template <class B>
void PipelineEngine<B>::fill_once(int mb, const FillBatch& fill) {
  // One host slot per micro-batch: a GPU may still be copying an earlier one while the host
  // fills the next; every slot is free again after the step's synchronisation.
  if (filled_[std::size_t(mb)]) return;
  const std::int64_t n = std::int64_t(plan_.micro_batch_size) * seq_len();
  fill(mb, host_tokens_ + mb * n, host_targets_ + mb * n);
  if (const int cp = grid_.shape().cp; cp > 1) {  // this cp rank's chunks of every sequence
    detail::keep_cp_chunks(host_tokens_ + mb * n, plan_.micro_batch_size, seq_len(), cp,
                           grid_.coord().cp_rank);
    detail::keep_cp_chunks(host_targets_ + mb * n, plan_.micro_batch_size, seq_len(), cp,
                           grid_.coord().cp_rank);
  }
  filled_[std::size_t(mb)] = true;
}

template <class B>
void PipelineEngine<B>::forward(int c, int mb, const FillBatch& fill, float grad_scale, bool with_grad) {
  comm::Communicator& pp = *groups_.pp;
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  const int vs = virtual_stage(c), last_vs = pp_ * v_ - 1;
  const int slot = mb % plan_.chunks[std::size_t(c)].slots;
  const std::int64_t n = std::int64_t(plan_.micro_batch_size) * seq_len();
  const typename B::Mark wait = be_->mark();
  pp.wait(act_send_[std::size_t(c)][std::size_t(slot)]);  // the slot's previous output has left
  const A* input = nullptr;
  if (vs == 0 || vs == last_vs) fill_once(mb, fill);
  if (vs != 0) {
    input = act_in_[std::size_t(c)][std::size_t(slot)];
    pp.recv(act_in_[std::size_t(c)][std::size_t(slot)], std::size_t(act_elems_), dtype_of<A>(),
            (stage_ + pp_ - 1) % pp_, tag(mb, vs, false));
  }
  time(Timing::pipeline_wait, wait);
  const typename B::Mark compute = be_->mark();
  stage.forward_chunk(slot, host_tokens_ + mb * n, input);
  if (vs == last_vs) {
    stage.loss_into(slot, host_targets_ + mb * n, grad_scale, with_grad, host_losses_ + mb * n);
    loss_rows_[std::size_t(mb)] = true;
  }
  time(Timing::compute, compute);
  if (vs != last_vs)
    act_send_[std::size_t(c)][std::size_t(slot)] =
        pp.isend(stage.output(slot), std::size_t(act_elems_), dtype_of<A>(), (stage_ + 1) % pp_,
                 tag(mb, vs + 1, false));
}

template <class B>
void PipelineEngine<B>::backward(int c, int mb) {
  comm::Communicator& pp = *groups_.pp;
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  const int vs = virtual_stage(c), last_vs = pp_ * v_ - 1;
  const int slot = mb % plan_.chunks[std::size_t(c)].slots;
  const G* out_grad = nullptr;
  const typename B::Mark wait = be_->mark();
  if (vs != last_vs) {
    out_grad = grad_in_[std::size_t(c)][std::size_t(slot)];
    pp.recv(grad_in_[std::size_t(c)][std::size_t(slot)], std::size_t(act_elems_), dtype_of<G>(),
            (stage_ + 1) % pp_, tag(mb, vs, true));
  }
  pp.wait(act_send_[std::size_t(c)][std::size_t(slot)]);
  time(Timing::pipeline_wait, wait);
  const bool split = stage.placement().split_backward;  // zb_h1: the weight gradients come in weight()
  const bool last = !split && mb == last_backward_mb_[std::size_t(c)];
  final_backward_[std::size_t(c)] = last;
  final_from_[std::size_t(c)] = INT64_MAX;
  const typename B::Mark compute = be_->mark();
  if (split)
    stage.backward_input_chunk(slot, out_grad);
  else
    stage.backward_chunk(slot, out_grad);
  time(Timing::compute, compute);
  if (last && !plan_.chunks[std::size_t(c)].sharding.grads_sharded()) grads_final(c);
  if (vs != 0) {
    G* out = grad_out_[std::size_t(c)][std::size_t(slot)];
    const typename B::Mark w2 = be_->mark();
    pp.wait(grad_send_[std::size_t(c)][std::size_t(slot)]);
    time(Timing::pipeline_wait, w2);
    be_->copy(out, stage.input_grad(), act_elems_);
    grad_send_[std::size_t(c)][std::size_t(slot)] = pp.isend(out, std::size_t(act_elems_), dtype_of<G>(),
                                                             (stage_ + pp_ - 1) % pp_, tag(mb, vs - 1, true));
  }
}

template <class B>
void PipelineEngine<B>::weight(int c, int mb) {
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  const bool last = mb == last_backward_mb_[std::size_t(c)];
  final_backward_[std::size_t(c)] = last;
  final_from_[std::size_t(c)] = INT64_MAX;
  const typename B::Mark compute = be_->mark();
  stage.backward_weight_chunk(mb % plan_.chunks[std::size_t(c)].slots);
  time(Timing::compute, compute);
  if (last && !plan_.chunks[std::size_t(c)].sharding.grads_sharded()) grads_final(c);
}

template <class B>
void PipelineEngine<B>::grads_final(int c) {
  // The rest of the chunk's gradients (below the last layer handed on, and the embedding):
  // their sequence- and context-parallel sums, then to DP.
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  final_backward_[std::size_t(c)] = false;
  stage.reduce_sequence_parallel_grads(0, final_from_[std::size_t(c)]);
  stage.reduce_context_parallel_grads(0, final_from_[std::size_t(c)]);
  optimizers_[std::size_t(c)]->grads_ready_from(0, stage.grads().data());
}

template <class B>
void PipelineEngine<B>::layer_grads_ready(int c, int layer) {
  // During the step's last backward of chunk c, gradients from this layer's start to the end
  // of the flat buffer are final: finish their sequence-parallel sums, hand them to DP.
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  if (plan_.chunks[std::size_t(c)].sharding.grads_sharded()) {
    // ZeRO-2, every micro-batch: the layer's unit is complete; sum it over TP (sequence
    // parallelism) and over CP (each cp rank saw part of the sequences; the sums are linear, so
    // summing every micro-batch's unit is exact), then reduce-scatter it over DP while the next
    // layer runs backward.
    const std::int64_t begin = stage.layer_range(layer).first;  // the unit's start (aligned to dp)
    const std::int64_t end = stage.layer_range(layer).second;
    stage.reduce_sequence_parallel_grads_at(unit_base_[std::size_t(c)], begin, end);
    stage.reduce_context_parallel_grads_at(unit_base_[std::size_t(c)], begin, end);
    optimizers_[std::size_t(c)]->end_unit(begin);
    return;
  }
  if (!final_backward_[std::size_t(c)]) return;
  const std::int64_t begin = stage.layer_range(layer).first;
  stage.reduce_sequence_parallel_grads(begin, final_from_[std::size_t(c)]);
  stage.reduce_context_parallel_grads(begin, final_from_[std::size_t(c)]);
  final_from_[std::size_t(c)] = begin;
  optimizers_[std::size_t(c)]->grads_ready_from(begin, stage.grads().data());
}

template <class B>
void PipelineEngine<B>::bind_sharded_grads(int c) {
  // ZeRO-2: the tensors around the layers write into the optimizer's edge buffer for the
  // whole step; each layer gets a unit buffer just before its backward.
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  DistributedOptimizer<B>& opt = *optimizers_[std::size_t(c)];
  const ShardingPlan& s = opt.sharding();
  stage.bind_edge_grads(opt.edges(), s.prefix_end, s.suffix_begin);
  unit_base_.resize(std::size_t(v_), nullptr);
  const bool zero3 = s.params_sharded();
  if (zero3) stage.bind_edge_params(opt.param_edges(), s.prefix_end, s.suffix_begin);
  // ZeRO-3: the layer's parameters gathered (the next layer's gather started) before use.
  auto gather = [this, c](int layer, int next) {
    model::Stage<B>& st = *chunks_[std::size_t(c)];
    const int first = st.plan().dims.first_layer, count = st.plan().dims.L;
    const std::int64_t prefetch = next >= first && next < first + count ? st.layer_range(next).first : -1;
    st.bind_layer_params(layer,
                         optimizers_[std::size_t(c)]->gathered_unit(st.layer_range(layer).first, prefetch));
  };
  if (zero3) stage.on_layer_forward_begin = [gather](int layer) { gather(layer, layer + 1); };
  auto bind_unit = [this, c](int layer) {
    model::Stage<B>& st = *chunks_[std::size_t(c)];
    G* base = optimizers_[std::size_t(c)]->begin_unit(st.layer_range(layer).first);
    unit_base_[std::size_t(c)] = base;
    st.bind_layer_grads(layer, base);
  };
  // zb_h1: the layer's unit is bound for its W pass (on_layer_weight_begin), reduce-scattered
  // right after it; the B pass holds its few gradients of the layer meanwhile (stage_split_impl.hpp).
  const bool split = stage.placement().split_backward;
  stage.on_layer_backward_begin = [zero3, split, gather, bind_unit](int layer) {
    if (zero3) gather(layer, layer - 1);
    if (!split) bind_unit(layer);
  };
  if (split) stage.on_layer_weight_begin = bind_unit;
}

template <class B>
void PipelineEngine<B>::gather_sharded_edges() {
  for (auto& o : optimizers_)
    if (o->sharding().params_sharded()) o->gather_edges();
}

template <class B>
void PipelineEngine<B>::reduce_sequence_parallel_edges(int c) {
  model::Stage<B>& stage = *chunks_[std::size_t(c)];
  DistributedOptimizer<B>& opt = *optimizers_[std::size_t(c)];
  const ShardingPlan& s = opt.sharding();
  stage.reduce_sequence_parallel_grads_at(opt.edges(), 0, s.prefix_end);
  stage.reduce_sequence_parallel_grads_at(opt.edges() + s.prefix_end - s.suffix_begin, s.suffix_begin,
                                          INT64_MAX);
  // And over CP (the edges accumulate the whole step; summed once here, before DP).
  stage.reduce_context_parallel_grads_at(opt.edges(), 0, s.prefix_end);
  stage.reduce_context_parallel_grads_at(opt.edges() + s.prefix_end - s.suffix_begin, s.suffix_begin,
                                         INT64_MAX);
}

template <class B>
void PipelineEngine<B>::wait_sends() {
  comm::Communicator& pp = *groups_.pp;
  const typename B::Mark wait = be_->mark();
  for (int c = 0; c < v_; ++c)
    for (std::size_t s = 0; s < act_send_[std::size_t(c)].size(); ++s) {
      pp.wait(act_send_[std::size_t(c)][s]);
      pp.wait(grad_send_[std::size_t(c)][s]);
    }
  time(Timing::pipeline_wait, wait);
}

template <class B>
StepStats PipelineEngine<B>::finish_stats(int microbatches) {
  be_->synchronize();
  StepStats stats;
  for (const Timed& t : timed_) {
    const double s = B::seconds(t.start, t.end);
    if (t.kind == Timing::compute)
      stats.compute_s += s;
    else if (t.kind == Timing::pipeline_wait)
      stats.pipeline_wait_s += s;
    else
      stats.dp_wait_s += s;
  }
  // The losses of each micro-batch, summed in double over its rows with a target, then over
  // the micro-batches in order. With cp, this rank's rows are the first n / cp of each slot.
  const std::int64_t n = std::int64_t(plan_.micro_batch_size) * seq_len(), rows = n / grid_.shape().cp;
  for (int mb = 0; mb < microbatches; ++mb) {
    if (!loss_rows_[std::size_t(mb)]) continue;
    model::LossSum l;
    for (std::int64_t i = mb * n; i < mb * n + rows; ++i) {
      if (host_targets_[i] < 0) continue;
      l.sum += double(host_losses_[i]);
      ++l.count;
    }
    stats.loss.sum += l.sum;
    stats.loss.count += l.count;
  }
  if (grid_.shape().cp > 1) {  // the loss of whole sequences: the sum over the cp ranks' rows
    double sum[2] = {stats.loss.sum, double(stats.loss.count)};
    grid_.cp_group().all_reduce(sum, 2);
    stats.loss.sum = sum[0];
    stats.loss.count = std::int64_t(sum[1]);
  }
  return stats;
}

template <class B>
StepStats PipelineEngine<B>::run(const FillBatch& fill, float grad_scale) {
  be_->activate();
  timed_.clear();
  std::fill(filled_.begin(), filled_.end(), false);
  std::fill(loss_rows_.begin(), loss_rows_.end(), false);
  for (auto& c : chunks_) c->zero_grads();
  for (int c = 0; c < v_; ++c)
    if (plan_.chunks[std::size_t(c)].sharding.grads_sharded()) optimizers_[std::size_t(c)]->zero_grad_shard();
  gather_sharded_edges();
  for (const PipelineAction& a : plan_.schedule) {
    if (a.kind == Kind::forward)
      forward(a.chunk, a.microbatch, fill, grad_scale, true);
    else if (a.kind == Kind::backward)
      backward(a.chunk, a.microbatch);
    else
      weight(a.chunk, a.microbatch);
  }
  wait_sends();
  // Tied embeddings: the input table (first virtual stage) and the output layer's copy (last)
  // get the sum of both gradients, so both copies take the same update.
  const typename B::Mark dp_wait = be_->mark();
  // Where chunk c's gradient at flat offset x lives (ZeRO-2: the edge buffer).
  auto grad_at = [this](std::size_t c, std::int64_t x) {
    return plan_.chunks[c].sharding.grads_sharded() ? optimizers_[c]->edge_grad(x)
                                                    : chunks_[c]->grads().data() + x;
  };
  for (int c = 0; c < v_; ++c)
    if (plan_.chunks[std::size_t(c)].sharding.grads_sharded()) reduce_sequence_parallel_edges(c);
  if (tied_first_ && tied_last_) {  // both copies on this rank (interleaved chunks, pp 1)
    G* g0 = grad_at(0, tied_first_->offset);
    G* g1 = grad_at(chunks_.size() - 1, tied_last_->offset);
    be_->accumulate(g0, g1, tied_first_->numel);
    be_->copy(g1, g0, tied_first_->numel);
  } else if (const model::ParamInfo* p = tied_first_ ? tied_first_ : tied_last_; p && groups_.embedding) {
    groups_.embedding->all_reduce(grad_at(tied_first_ ? 0 : chunks_.size() - 1, p->offset),
                                  std::size_t(p->numel), dtype_of<G>());
  }
  for (int c = 0; c < v_; ++c)
    optimizers_[std::size_t(c)]->finish_backward(chunks_[std::size_t(c)]->grads().data());
  time(Timing::dp_wait, dp_wait);
  return finish_stats(m_);
}

template <class B>
StepStats PipelineEngine<B>::evaluate(const FillBatch& fill, int microbatches) {
  STRATA_CHECK(microbatches >= 1 && microbatches <= m_, "evaluate: ", microbatches,
               " micro-batches, expected 1 to ", m_);
  be_->activate();
  // Forward of (mb, virtual stage vs) needs only (mb, vs - 1), which its rank ran earlier in
  // this same order; sends do not block, so the order cannot deadlock. A slot's previous
  // output is waited for before it is overwritten (forward()).
  timed_.clear();
  std::fill(filled_.begin(), filled_.end(), false);
  std::fill(loss_rows_.begin(), loss_rows_.end(), false);
  gather_sharded_edges();
  for (int mb = 0; mb < microbatches; ++mb)
    for (int c = 0; c < v_; ++c) forward(c, mb, fill, 0.0f, false);
  wait_sends();
  return finish_stats(microbatches);
}

template <class B>
void PipelineEngine<B>::set_seq_len(int seq_len) {
  be_->activate();
  for (auto& c : chunks_) c->set_seq_len(seq_len / grid_.shape().cp);
  act_elems_ = chunks_.front()->activation_rows() * chunks_.front()->config().d_model;
}

template <class B>
double PipelineEngine<B>::grad_norm() {
  be_->activate();
  double sq = 0;
  for (int c = 0; c < v_; ++c)
    sq += optimizers_[std::size_t(c)]->local_grad_sq(chunks_[std::size_t(c)]->grads().data());
  // Under ZeRO-1 every rank holds a distinct piece: sum over the world. Otherwise DP replicas
  // hold the same reduced gradients: sum over the model-parallel ranks (TP, then PP) only.
  // One number: MPI on the host.
  if (optimizers_.front()->sharding().sharded()) {
    if (grid_.coord().cp_rank > 0) sq = 0;  // cp ranks hold replicas of the same pieces: count one
    grid_.world_group().all_reduce(&sq, 1);
  } else {
    grid_.tp_group().all_reduce(&sq, 1);
    grid_.pp_group().all_reduce(&sq, 1);
  }
  return std::sqrt(sq);
}

template <class B>
double PipelineEngine<B>::optimizer_step(double lr, double grad_scale) {
  be_->activate();
  for (int c = 0; c < v_; ++c)
    optimizers_[std::size_t(c)]->step(chunks_[std::size_t(c)]->params().data(),
                                      chunks_[std::size_t(c)]->grads().data(), lr, grad_scale);
  be_->synchronize();
  double waited = 0;
  for (const auto& o : optimizers_) waited += B::seconds(o->gather_start, o->gather_end);
  return waited;
}

template <class B>
void PipelineEngine<B>::set_steps_taken(long steps) {
  for (auto& o : optimizers_) o->set_steps_taken(steps);
}

template <class B>
std::string PipelineEngine<B>::description() const {
  return be_->describe() + "\n" + plan_.describe();
}

template <class B>
std::string PipelineEngine<B>::device_name() const {
  return be_->device_name();
}

// ---- checkpoints and host copies -----------------------------------------------------------

namespace detail {
// Where the checkpointer reads and writes the state: the engine's own buffers when they are
// fp32 host memory without separate master weights (the CPU), else host staging.
template <class B>
constexpr bool state_in_place() {
  return std::is_same_v<typename B::Act, float>;
}
}  // namespace detail

template <class B>
void PipelineEngine<B>::stage_state() {
  if (ckpt_staging_.allocated()) return;
  std::vector<std::size_t> p, m, v;
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const ShardingPlan& s = plan_.chunks[c].sharding;
    const std::string chunk = "chunk" + std::to_string(c) + ".";
    p.push_back(ckpt_staging_.add(chunk + "params", {s.padded}, DType::f32, "checkpoint"));
    m.push_back(ckpt_staging_.add(chunk + "exp_avg", {s.state_elems}, DType::f32, "checkpoint"));
    v.push_back(ckpt_staging_.add(chunk + "exp_avg_sq", {s.state_elems}, DType::f32, "checkpoint"));
  }
  be_->allocate_host(ckpt_staging_);
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    staged_params_.push_back(ckpt_staging_.data<float>(p[c]));
    staged_m_.push_back(ckpt_staging_.data<float>(m[c]));
    staged_v_.push_back(ckpt_staging_.data<float>(v[c]));
  }
}

template <class B>
std::vector<StateView> PipelineEngine<B>::state_views() {
  std::vector<StateView> out;
  bool in_place = detail::state_in_place<B>() && B::spec().host_memory && !B::spec().master_weights;
  for (const ChunkPlan& c : plan_.chunks) in_place &= !c.sharding.params_sharded();  // ZeRO-3: staged
  if (!in_place) stage_state();  // host staging: 12 bytes per parameter, made at the first save or load
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    StateView v;
    v.table = &chunks_[c]->table();
    v.has_embedding = chunks_[c]->placement().has_embedding;
    v.sharding = &plan_.chunks[c].sharding;
    v.live = in_place;
    if (in_place) {
      if constexpr (detail::state_in_place<B>()) v.params = chunks_[c]->params().data();
      v.exp_avg = optimizers_[c]->exp_avg();
      v.exp_avg_sq = optimizers_[c]->exp_avg_sq();
    } else {
      v.params = staged_params_[c];
      v.exp_avg = staged_m_[c];
      v.exp_avg_sq = staged_v_[c];
    }
    out.push_back(v);
  }
  return out;
}

template <class B>
void PipelineEngine<B>::pull_state() {
  be_->activate();
  if (!ckpt_staging_.allocated()) return;  // the views are the engine's own buffers
  be_->synchronize();
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const ShardingPlan& s = plan_.chunks[c].sharding;
    DistributedOptimizer<B>& o = *optimizers_[c];
    // The fp32 master weights of the owned pieces at their flat positions (every element
    // without ZeRO-1), and the moments as they are.
    const float* master = o.master();
    if constexpr (std::is_same_v<A, float>)
      if (!master) master = o.param_shard();  // ZeRO-3 on fp32: the shard is the master copy
    for (std::size_t i = 0; i < s.owned.size(); ++i)
      be_->download(staged_params_[c] + s.owned[i].begin, master + s.shard_offset[i],
                    std::size_t(s.owned[i].size()) * sizeof(float));
    be_->download(staged_m_[c], o.exp_avg(), std::size_t(s.state_elems) * sizeof(float));
    be_->download(staged_v_[c], o.exp_avg_sq(), std::size_t(s.state_elems) * sizeof(float));
  }
  be_->synchronize();
}

template <class B>
void PipelineEngine<B>::push_state() {
  be_->activate();
  if (!ckpt_staging_.allocated()) return;
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const ShardingPlan& s = plan_.chunks[c].sharding;
    DistributedOptimizer<B>& o = *optimizers_[c];
    if (s.params_sharded())
      o.set_param_shard(staged_params_[c]);  // and the master weights
    else {
      if constexpr (std::is_same_v<typename B::Host, float>) chunks_[c]->upload_parameters(staged_params_[c]);
      o.set_master(staged_params_[c]);
    }
    be_->upload(o.exp_avg(), staged_m_[c], std::size_t(s.state_elems) * sizeof(float));
    be_->upload(o.exp_avg_sq(), staged_v_[c], std::size_t(s.state_elems) * sizeof(float));
  }
  be_->synchronize();
}

namespace detail {
// The whole flat buffer on every DP rank from each rank's pieces ([state_elems], piece i at
// shard_offset[i]): bucket by bucket over the DP group, MPI on the host (tests and summaries,
// not the step).
inline void gather_pieces(const ShardingPlan& s, const std::vector<float>& mine, comm::Communicator& dp,
                          std::vector<float>& flat) {
  std::vector<float> bucket;
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const Range& b = s.buckets[i];
    bucket.resize(std::size_t(b.size()));
    dp.all_gather(mine.data() + s.shard_offset[i], bucket.data(), std::size_t(b.size() / s.dp_size),
                  DType::f32);
    const std::int64_t end = std::min(b.end, s.numel);
    for (std::int64_t j = b.begin; j < end; ++j) flat[std::size_t(j)] = bucket[std::size_t(j - b.begin)];
  }
}
}  // namespace detail

template <class B>
void PipelineEngine<B>::download_parameters(std::vector<float>& params, std::vector<model::ParamInfo>& info) {
  params.clear();
  info.clear();
  be_->activate();
  be_->synchronize();
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const ShardingPlan& s = plan_.chunks[c].sharding;
    std::vector<float> flat(std::size_t(s.numel));
    float* master = optimizers_[c]->master();
    if constexpr (std::is_same_v<A, float>)
      if (!master && s.params_sharded()) master = optimizers_[c]->param_shard();  // ZeRO-3 on fp32
    if (master) {
      std::vector<float> mine(std::size_t(s.state_elems));
      be_->download(mine.data(), master, mine.size() * sizeof(float));
      be_->synchronize();
      if (s.sharded()) {
        detail::gather_pieces(s, mine, grid_.dp_group(), flat);
      } else {
        std::copy_n(mine.begin(), flat.size(), flat.begin());
      }
    } else {
      if constexpr (std::is_same_v<typename B::Host, float>) chunks_[c]->download_parameters(flat.data());
    }
    const std::int64_t base = std::int64_t(params.size());
    for (model::ParamInfo p : chunks_[c]->table().entries()) {
      p.offset += base;
      info.push_back(std::move(p));
    }
    params.insert(params.end(), flat.begin(), flat.end());
  }
}

template <class B>
void PipelineEngine<B>::download_gradients(std::vector<float>& grads) {
  be_->activate();
  grads.clear();
  be_->synchronize();
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const ShardingPlan& s = plan_.chunks[c].sharding;
    std::vector<float> flat(std::size_t(s.numel));
    if (s.sharded()) {
      // The reduced gradients live in the owned pieces of the shard buffer.
      std::vector<float> mine(std::size_t(s.state_elems));
      optimizers_[c]->download_shard(mine.data());
      detail::gather_pieces(s, mine, grid_.dp_group(), flat);
    } else {
      be_->download(flat.data(), chunks_[c]->grads().data(), flat.size() * sizeof(float));
      be_->synchronize();
    }
    grads.insert(grads.end(), flat.begin(), flat.end());
  }
}

}  // namespace strata::parallel
