#include "strata/parallel/pipeline.hpp"

#include <climits>
#include <cmath>

#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"
#include "strata/kernels/cpu/elementwise.hpp"

namespace strata::parallel {

using Kind = PipelineAction::Kind;

std::vector<int> layers_per_virtual_stage(const config::ModelConfig& model, const config::ParallelConfig& p) {
  const int n = p.pp * p.virtual_stages;
  if (!p.layers_per_stage.empty()) return p.layers_per_stage;
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(model.num_layers / n + (i < model.num_layers % n ? 1 : 0));
  return out;
}

PipelineEngine::PipelineEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                               const config::OptimConfig& optim, int seq_len, int microbatches,
                               comm::RankGrid& grid)
    : grid_(grid), pp_(grid.shape().pp), stage_(grid.coord().pp_rank), v_(parallel.virtual_stages),
      m_(microbatches) {
  schedule_ = build_schedule(parallel.schedule, pp_, stage_, m_, v_);
  const std::vector<int> lps = layers_per_virtual_stage(model, parallel);
  const int tp = grid.shape().tp, dp = grid.shape().dp;
  const int last_vs = pp_ * v_ - 1;
  for (int c = 0; c < v_; ++c) {
    const int vs = virtual_stage(c);
    model::ChunkPlacement place;
    place.tp_size = tp;
    place.tp_rank = grid.coord().tp_rank;
    for (int i = 0; i < vs; ++i) place.first_layer += lps[std::size_t(i)];
    place.num_layers = lps[std::size_t(vs)];
    place.has_embedding = vs == 0;
    place.has_head = vs == last_vs;
    place.sequence_parallel = parallel.sequence_parallel;
    place.flat_multiple = dp;
    const int slots = std::max(1, max_in_flight(schedule_, c));
    slots_.push_back(slots);
    chunks_.push_back(std::make_unique<model::Transformer<float>>(
        model, parallel.micro_batch_size, seq_len, place, tp > 1 ? &grid.tp_group() : nullptr, slots));
    // The tied embedding lives on the first and the last virtual stage: its gradient is summed
    // over both after the schedule, so its DP reduction waits for that.
    std::vector<Range> defer;
    const model::ParamInfo* wte = chunks_.back()->table().find("embed.wte");
    if (model.tied_embeddings && last_vs > 0 && wte) defer.push_back({wte->offset, wte->offset + wte->numel});
    optimizers_.push_back(std::make_unique<DistributedOptimizer>(optim, parallel, chunks_.back()->table(),
                                                                 grid.dp_group(), defer));
  }
  act_elems_ = chunks_.front()->activation_rows() * model.d_model;
  const std::int64_t N = std::int64_t(parallel.micro_batch_size) * seq_len;
  std::vector<std::vector<std::array<std::size_t, 3>>> idx(static_cast<std::size_t>(v_));
  for (int c = 0; c < v_; ++c)
    for (int s = 0; s < slots_[std::size_t(c)]; ++s) {
      const std::string p = "chunk" + std::to_string(c) + ".slot" + std::to_string(s) + ".";
      // Only what the chunk exchanges: no input on the first virtual stage, no output
      // gradient on the last.
      const int vs = virtual_stage(c);
      const std::int64_t in = vs == 0 ? 0 : act_elems_, out = vs == last_vs ? 0 : act_elems_;
      idx[std::size_t(c)].push_back({buffers_.add(p + "act_in", {in}, DType::f32, "step"),
                                     buffers_.add(p + "grad_in", {out}, DType::f32, "step"),
                                     buffers_.add(p + "grad_out", {in}, DType::f32, "step")});
    }
  const auto i_tokens = buffers_.add("tokens", {N}, DType::i32, "step");
  const auto i_targets = buffers_.add("targets", {N}, DType::i32, "step");
  buffers_.allocate();
  act_in_.resize(std::size_t(v_));
  grad_in_.resize(std::size_t(v_));
  grad_out_.resize(std::size_t(v_));
  act_send_.resize(std::size_t(v_));
  grad_send_.resize(std::size_t(v_));
  for (int c = 0; c < v_; ++c) {
    for (const auto& a : idx[std::size_t(c)]) {
      act_in_[std::size_t(c)].push_back(buffers_.data<float>(a[0]));
      grad_in_[std::size_t(c)].push_back(buffers_.data<float>(a[1]));
      grad_out_[std::size_t(c)].push_back(buffers_.data<float>(a[2]));
    }
    act_send_[std::size_t(c)].resize(std::size_t(slots_[std::size_t(c)]));
    grad_send_[std::size_t(c)].resize(std::size_t(slots_[std::size_t(c)]));
  }
  tokens_ = buffers_.data<std::int32_t>(i_tokens);
  targets_ = buffers_.data<std::int32_t>(i_targets);
  last_backward_mb_.assign(std::size_t(v_), -1);
  final_backward_.assign(std::size_t(v_), false);
  final_from_.assign(std::size_t(v_), INT64_MAX);
  for (int c = 0; c < v_; ++c)  // set once: no std::function is built in the step loop
    chunks_[std::size_t(c)]->on_layer_grads_ready = [this, c](int layer) { layer_grads_ready(c, layer); };
  for (const auto& a : schedule_)
    if (a.kind == Kind::backward) last_backward_mb_[std::size_t(a.chunk)] = a.microbatch;
}

void PipelineEngine::init_parameters(std::uint64_t seed) {
  for (auto& c : chunks_) c->init_parameters(seed);
}

bool PipelineEngine::has_head() const { return chunks_.back()->placement().has_head; }

std::size_t PipelineEngine::parameter_bytes() const {
  std::size_t b = 0;
  for (const auto& c : chunks_) b += c->parameter_memory().total_bytes();
  return b;
}
std::size_t PipelineEngine::optimizer_bytes() const {
  std::size_t b = 0;
  for (const auto& o : optimizers_) b += o->state_bytes();
  return b;
}
std::size_t PipelineEngine::activation_bytes() const {
  std::size_t b = buffers_.total_bytes();
  for (const auto& c : chunks_) b += c->activation_memory().total_bytes();
  return b;
}

void PipelineEngine::forward(int c, int mb, const FillBatch& fill, float grad_scale, StepStats& stats,
                             bool with_grad) {
  comm::Communicator& pp = grid_.pp_group();
  model::Transformer<float>& model = *chunks_[std::size_t(c)];
  const int vs = virtual_stage(c), last_vs = pp_ * v_ - 1;
  const int slot = mb % slots_[std::size_t(c)];
  Timer wait;
  pp.wait(act_send_[std::size_t(c)][std::size_t(slot)]);  // the slot's previous output has left
  const float* input = nullptr;
  if (vs == 0 || vs == last_vs) fill(mb, tokens_, targets_);
  if (vs != 0) {
    input = act_in_[std::size_t(c)][std::size_t(slot)];
    pp.recv(act_in_[std::size_t(c)][std::size_t(slot)], std::size_t(act_elems_), DType::f32,
            (stage_ + pp_ - 1) % pp_, tag(mb, vs, false));
  }
  stats.pipeline_wait_s += wait.seconds();
  const Timer compute;
  model.forward_chunk(slot, tokens_, input);
  if (vs == last_vs) {
    const model::LossSum l = model.loss(slot, targets_, grad_scale, with_grad);
    stats.loss.sum += l.sum;
    stats.loss.count += l.count;
  }
  stats.compute_s += compute.seconds();
  if (vs != last_vs)
    act_send_[std::size_t(c)][std::size_t(slot)] =
        pp.isend(model.output(slot), std::size_t(act_elems_), DType::f32, (stage_ + 1) % pp_, tag(mb, vs + 1, false));
}

void PipelineEngine::backward(int c, int mb, StepStats& stats) {
  comm::Communicator& pp = grid_.pp_group();
  model::Transformer<float>& model = *chunks_[std::size_t(c)];
  DistributedOptimizer& opt = *optimizers_[std::size_t(c)];
  const int vs = virtual_stage(c), last_vs = pp_ * v_ - 1;
  const int slot = mb % slots_[std::size_t(c)];
  const float* out_grad = nullptr;
  Timer wait;
  if (vs != last_vs) {
    out_grad = grad_in_[std::size_t(c)][std::size_t(slot)];
    pp.recv(grad_in_[std::size_t(c)][std::size_t(slot)], std::size_t(act_elems_), DType::f32,
            (stage_ + 1) % pp_, tag(mb, vs, true));
  }
  pp.wait(act_send_[std::size_t(c)][std::size_t(slot)]);
  stats.pipeline_wait_s += wait.seconds();
  const bool last = mb == last_backward_mb_[std::size_t(c)];
  final_backward_[std::size_t(c)] = last;
  final_from_[std::size_t(c)] = INT64_MAX;
  const Timer compute;
  model.backward_chunk(slot, out_grad);
  stats.compute_s += compute.seconds();
  if (last) {
    final_backward_[std::size_t(c)] = false;
    model.reduce_sequence_parallel_grads(0, final_from_[std::size_t(c)]);
    opt.grads_ready_from(0, model.grads().data());
  }
  if (vs != 0) {
    float* out = grad_out_[std::size_t(c)][std::size_t(slot)];
    Timer w2;
    pp.wait(grad_send_[std::size_t(c)][std::size_t(slot)]);
    stats.pipeline_wait_s += w2.seconds();
    kernels::cpu::copy(out, model.input_grad(), act_elems_);
    grad_send_[std::size_t(c)][std::size_t(slot)] =
        pp.isend(out, std::size_t(act_elems_), DType::f32, (stage_ + pp_ - 1) % pp_, tag(mb, vs - 1, true));
  }
}

void PipelineEngine::layer_grads_ready(int c, int layer) {
  // During the step's last backward of chunk c, gradients from this layer's start to the end
  // of the flat buffer are final: finish their sequence-parallel sums, hand them to DP.
  if (!final_backward_[std::size_t(c)]) return;
  model::Transformer<float>& model = *chunks_[std::size_t(c)];
  const std::int64_t begin = model.layer_range(layer).first;
  model.reduce_sequence_parallel_grads(begin, final_from_[std::size_t(c)]);
  final_from_[std::size_t(c)] = begin;
  optimizers_[std::size_t(c)]->grads_ready_from(begin, model.grads().data());
}

StepStats PipelineEngine::run(const FillBatch& fill, float grad_scale) {
  StepStats stats;
  for (auto& c : chunks_) c->zero_grads();
  for (const PipelineAction& a : schedule_) {
    if (a.kind == Kind::forward) forward(a.chunk, a.microbatch, fill, grad_scale, stats);
    else backward(a.chunk, a.microbatch, stats);
  }
  wait_sends(stats);
  // Tied embeddings: the input table (first virtual stage) and the output layer's copy (last)
  // get the sum of both gradients, so both copies take the same update.
  const model::ParamInfo* first = chunks_.front()->table().find("embed.wte");
  const model::ParamInfo* last = chunks_.back()->table().find("embed.wte");
  const bool tied = chunks_.front()->config().tied_embeddings && pp_ * v_ > 1;
  const Timer dp_wait;
  if (tied && pp_ == 1) {  // both copies on this rank (interleaved chunks)
    float* g0 = chunks_.front()->grads().data() + first->offset;
    float* g1 = chunks_.back()->grads().data() + last->offset;
    kernels::cpu::accumulate(g0, g1, first->numel);
    kernels::cpu::copy(g1, g0, first->numel);
  } else if (tied && grid_.embedding_group()) {
    model::Transformer<float>& c = grid_.is_first_stage() ? *chunks_.front() : *chunks_.back();
    const model::ParamInfo* p = c.table().find("embed.wte");
    grid_.embedding_group()->all_reduce(c.grads().data() + p->offset, std::size_t(p->numel));
  }
  for (int c = 0; c < v_; ++c) optimizers_[std::size_t(c)]->finish_backward(chunks_[std::size_t(c)]->grads().data());
  stats.dp_wait_s += dp_wait.seconds();
  return stats;
}

void PipelineEngine::wait_sends(StepStats& stats) {
  comm::Communicator& pp = grid_.pp_group();
  const Timer wait;
  for (int c = 0; c < v_; ++c)
    for (int s = 0; s < slots_[std::size_t(c)]; ++s) {
      pp.wait(act_send_[std::size_t(c)][std::size_t(s)]);
      pp.wait(grad_send_[std::size_t(c)][std::size_t(s)]);
    }
  stats.pipeline_wait_s += wait.seconds();
}

StepStats PipelineEngine::evaluate(const FillBatch& fill, int microbatches) {
  STRATA_CHECK(microbatches >= 1 && microbatches <= m_, "evaluate: ", microbatches,
               " micro-batches, expected 1 to ", m_);
  // Forward of (mb, virtual stage vs) needs only (mb, vs - 1), which its rank ran earlier in
  // this same order; sends do not block, so the order cannot deadlock. A slot's previous
  // output is waited for before it is overwritten (forward()).
  StepStats stats;
  for (int mb = 0; mb < microbatches; ++mb)
    for (int c = 0; c < v_; ++c) forward(c, mb, fill, 0.0f, stats, false);
  wait_sends(stats);
  return stats;
}

void PipelineEngine::set_seq_len(int seq_len) {
  for (auto& c : chunks_) c->set_seq_len(seq_len);
  act_elems_ = chunks_.front()->activation_rows() * chunks_.front()->config().d_model;
}

double PipelineEngine::grad_norm() {
  double sq = 0;
  for (int c = 0; c < v_; ++c) sq += optimizers_[std::size_t(c)]->local_grad_sq(chunks_[std::size_t(c)]->grads().data());
  // Under ZeRO-1 every rank holds a distinct piece: sum over the world. Otherwise DP replicas
  // hold the same reduced gradients: sum over the model-parallel ranks (TP, then PP) only.
  if (optimizers_.front()->sharded()) {
    grid_.world_group().all_reduce(&sq, 1);
  } else {
    grid_.tp_group().all_reduce(&sq, 1);
    grid_.pp_group().all_reduce(&sq, 1);
  }
  return std::sqrt(sq);
}

double PipelineEngine::optimizer_step(double lr, double grad_scale) {
  double waited = 0;
  for (int c = 0; c < v_; ++c)
    waited += optimizers_[std::size_t(c)]->step(chunks_[std::size_t(c)]->params().data(),
                                                 chunks_[std::size_t(c)]->grads().data(), lr, grad_scale);
  return waited;
}

}  // namespace strata::parallel
