// GpuEngine: construction, the step, host transfers (see gpu_engine.hpp and
// gpu_engine_impl.hpp for the structure).
//
// Construction, in the order of pipeline.hpp's plan (torchtitan's habit):
//   0. limits checked from the configuration alone (no device needed: clear errors anywhere)
//   1. tensor-parallel plan  the parameter table of this TP rank (model::make_parameter_table)
//   2. data-parallel shards  buckets and this rank's ZeRO-1 pieces (make_buckets, shard_piece)
//   3. device              select_device, compute stream, cuBLAS(Lt), TP/DP NCCL communicators
//   4. allocate            four memory plans (parameters, optimizer, activations, pinned host),
//                          one allocation each; nothing is allocated in run()/optimizer_step()
//   5. initialise          init_parameters(seed): the CPU's values, uploaded
//
// One step (run):
//   zero the fp32 gradients
//   per micro-batch mb: tokens/targets -> pinned slot mb -> device; forward; loss (dlogits in
//     place); losses -> pinned slot mb (async); backward. During the last micro-batch's
//     backward, after each layer, the DP buckets it completes are launched (non-blocking,
//     DP stream) and overlap the remaining layers' backward.
//   launch the remaining buckets (the embedding's), the compute stream waits for all
//   host waits for the stream; losses summed on the host in double over targets >= 0.
#include <sstream>

#include "gpu_engine_impl.hpp"
#include "strata/kernels/cuda/elementwise.hpp"

namespace strata::parallel {

namespace {

// Each rank's vocabulary slice a multiple of 64 rows: aligned logits rows (padded_vocab).
constexpr int kVocabMultiple = 64;

// What the GPU path does not run, named by setting; checked before any device is touched so
// the errors are the same on machines without a GPU.
void check_gpu_limits(const config::ModelConfig& model, const config::ParallelConfig& parallel, int seq_len,
                      int microbatches, const comm::RankGrid& grid) {
  if (parallel.pp > 1 || grid.shape().pp > 1)
    throw make_error("parallel.pp = ", std::max(parallel.pp, grid.shape().pp),
                     ": pipeline parallelism on GPUs is not implemented yet: use pp: 1");
  if (parallel.virtual_stages != 1)
    throw make_error("parallel.virtual_stages = ", parallel.virtual_stages,
                     ": interleaved pipeline chunks need pipeline parallelism, which GPUs do not run yet: use 1");
  const int hs = model.head_size();
  if (model.d_model % model.num_heads != 0 || (hs != 64 && hs != 128))
    throw make_error("model.d_model / model.num_heads = ", model.d_model, " / ", model.num_heads,
                     ": the GPU attention kernel needs a head size of 64 or 128 (got ",
                     double(model.d_model) / model.num_heads, ")");
  const int tp = grid.shape().tp;
  if (model.num_heads % tp != 0 || model.kv_heads() % tp != 0 || model.ffn() % tp != 0)
    throw make_error("parallel.tp = ", tp, " must divide model.num_heads (", model.num_heads, "), the KV heads (",
                     model.kv_heads(), ") and the MLP width (", model.ffn(), ")");
  if (model.num_heads % model.kv_heads() != 0)
    throw make_error("model.num_kv_heads = ", model.kv_heads(), " must divide model.num_heads = ", model.num_heads);
  if (seq_len < 1 || seq_len > model.max_seq_len)
    throw make_error("sequence length ", seq_len, " is outside [1, model.max_seq_len = ", model.max_seq_len, "]");
  if (parallel.sequence_parallel && (std::int64_t(parallel.micro_batch_size) * seq_len) % tp != 0)
    throw make_error("parallel.sequence_parallel: micro_batch_size x sequence length (", parallel.micro_batch_size,
                     " x ", seq_len, ") must be divisible by parallel.tp (", tp, ")");
  if (microbatches < 1) throw make_error("GpuEngine: ", microbatches, " micro-batches per step, expected >= 1");
  if (parallel.micro_batch_size < 1)
    throw make_error("parallel.micro_batch_size = ", parallel.micro_batch_size, ", expected >= 1");
}

}  // namespace

GpuEngine::Impl::Impl(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                      const config::OptimConfig& optim, int seq_len, int microbatches, comm::RankGrid& g)
    : cfg(model), par(parallel), opt(optim), grid(g), m(microbatches) {
  check_gpu_limits(model, parallel, seq_len, microbatches, grid);
  // 1. tensor-parallel plan
  tp_size = grid.shape().tp;
  tp_rank = grid.coord().tp_rank;
  dp_size = grid.shape().dp;
  dp_rank = grid.coord().dp_rank;
  B = parallel.micro_batch_size;
  T = seq_len;
  C = model.d_model;
  NH = model.num_heads / tp_size;
  NKV = model.kv_heads() / tp_size;
  HS = model.head_size();
  F = model.ffn() / tp_size;
  V = model::padded_vocab(model.vocab_size, tp_size, kVocabMultiple) / tp_size;
  L = model.num_layers;
  N = std::int64_t(B) * T;
  Q = std::int64_t(NH) * HS;
  KV = std::int64_t(NKV) * HS;
  vocab_start = std::int64_t(tp_rank) * V;
  vocab_real = std::max<std::int64_t>(0, std::min<std::int64_t>(V, model.vocab_size - vocab_start));
  zero1 = dp_size > 1 && parallel.zero_stage == 1;
  bf16_reduce = dp_size > 1 && parallel.grad_reduce_dtype == config::ReduceDType::bf16;
  recompute = model.recompute == config::RecomputeKind::full;
  swiglu = model.mlp == config::MlpKind::swiglu;
  rms = model.norm == config::NormKind::rmsnorm;
  rope = model.positions == config::PositionKind::rope;
  sp = parallel.sequence_parallel && tp_size > 1;
  Nsp = sp ? N / tp_size : N;
  model::ChunkPlacement place;
  place.tp_size = tp_size;
  place.tp_rank = tp_rank;
  place.flat_multiple = dp_size;
  place.vocab_multiple = kVocabMultiple;
  place.sequence_parallel = parallel.sequence_parallel;  // marks the gradients SP sums over TP
  table = model::make_parameter_table(model, place);
  numel = table.numel();
  padded = padded_size(numel, dp_size);
  for (int l = 0; l < L; ++l) {  // each layer's contiguous flat range
    layer_ranges.push_back(table.layer_range(l));
    STRATA_CHECK(layer_ranges.back().first >= 0, "GpuEngine: layer ", l, " has no parameters in the table");
  }
  if (sp)
    for (const auto& p : table.entries())
      if (p.grad_needs_tp_sum) sp_sum_spans.emplace_back(p.offset, p.numel);
  // 2. data-parallel shards (and every other buffer) planned
  param_plan.add("params.bf16", {padded}, DType::bf16, "persistent");
  param_plan.add("grads.f32", {padded}, DType::f32, "step");
  plan_optimizer();
  plan_activations();
  // 3. device, streams, libraries, communicators
  device = kc::select_device(grid.local_rank(), grid.local_size());
  stream = std::make_unique<kc::Stream>();
  s = stream->get();
  blas = std::make_unique<kc::Blas>(s);
  ev_start = std::make_unique<kc::Event>(true);
  ev_compute_end = std::make_unique<kc::Event>(true);
  ev_wait_end = std::make_unique<kc::Event>(true);
  ev_gather_start = std::make_unique<kc::Event>(true);
  ev_gather_end = std::make_unique<kc::Event>(true);
  if (tp_size > 1)
    tp_comm = std::make_unique<comm::NcclCommunicator>(grid.tp_handle(), "tp", static_cast<void*>(s), grid.describe());
  if (dp_size > 1)
    dp_comm = std::make_unique<comm::NcclCommunicator>(grid.dp_handle(), "dp", static_cast<void*>(s), grid.describe());
  // 4. allocate (zero-filled) and bind the views
  kc::allocate_on_device(param_plan);
  kc::allocate_on_device(optim_plan);
  kc::allocate_on_device(act_plan);
  kc::allocate_pinned(host_plan);
  bind_parameters();
  bind_optimizer();
  bind_activations();
}

GpuEngine::Impl::~Impl() {
  // Several engines may live in one process on different devices (tests/mpi/test_gpu_layouts:
  // a one-GPU reference on device 0 beside a TP/DP engine on device 1), and whichever was used
  // last left its device current: the handles, streams and memory below belong to this one.
  if (device >= 0) cudaSetDevice(device);
  // Work enqueued on the stream may still read the buffers: let it finish before the memory
  // plans (declared before the stream's users) are released. Errors are not thrown here.
  if (stream) cudaStreamSynchronize(s);
}

void GpuEngine::Impl::use_device() const { STRATA_CUDA_CHECK(cudaSetDevice(device)); }

void GpuEngine::Impl::stage_batch(int mb, const FillBatch& fill) {
  // Slot mb of the pinned staging: the copy of micro-batch mb may still be in flight while the
  // host fills the next one; every slot is free again after the step's final synchronisation.
  std::int32_t* ht = h_tokens + std::int64_t(mb) * N;
  std::int32_t* hg = h_targets + std::int64_t(mb) * N;
  fill(mb, ht, hg);
  for (std::int64_t i = 0; i < N; ++i) {
    STRATA_CHECK(ht[i] >= 0 && ht[i] < cfg.vocab_size, "token id ", ht[i], " at position ", i,
                 " is outside the vocabulary [0, ", cfg.vocab_size, ")");
    STRATA_CHECK(hg[i] < cfg.vocab_size, "target id ", hg[i], " at position ", i, " is outside the vocabulary [0, ",
                 cfg.vocab_size, ")");
  }
  STRATA_CUDA_CHECK(cudaMemcpyAsync(tokens, ht, std::size_t(N) * sizeof(std::int32_t), cudaMemcpyHostToDevice, s));
  STRATA_CUDA_CHECK(cudaMemcpyAsync(targets, hg, std::size_t(N) * sizeof(std::int32_t), cudaMemcpyHostToDevice, s));
}

model::LossSum GpuEngine::Impl::host_loss_sum(int microbatches) const {
  // After the stream synchronisation: the losses of every micro-batch are in pinned memory.
  model::LossSum sum;
  for (std::int64_t i = 0; i < std::int64_t(microbatches) * N; ++i) {
    if (h_targets[i] < 0) continue;
    sum.sum += double(h_losses[i]);
    ++sum.count;
  }
  return sum;
}

// ---- GpuEngine ---------------------------------------------------------------------------------

GpuEngine::GpuEngine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                     const config::OptimConfig& optim, int seq_len, int microbatches, comm::RankGrid& grid)
    : impl_(std::make_unique<Impl>(model, parallel, optim, seq_len, microbatches, grid)) {}

GpuEngine::~GpuEngine() = default;

void GpuEngine::init_parameters(std::uint64_t seed) {
  std::vector<float> host(static_cast<std::size_t>(impl_->numel));
  model::init_parameter_values(impl_->table, seed, host.data());
  upload_parameters(host.data());
}

StepStats GpuEngine::run(const FillBatch& fill, float grad_scale) {
  Impl& e = *impl_;
  e.use_device();
  StepStats stats;
  e.ev_start->record(e.s);
  STRATA_CUDA_CHECK(cudaMemsetAsync(e.grads, 0, std::size_t(e.padded) * sizeof(float), e.s));
  e.sp_summed = 0;
  // pp = 1: forward then backward of each micro-batch, so one activation set serves all.
  for (int mb = 0; mb < e.m; ++mb) {
    e.forward_microbatch(mb, fill, grad_scale, true);
    e.backward_microbatch(mb == e.m - 1);
  }
  e.ev_compute_end->record(e.s);
  e.finish_backward();
  e.ev_wait_end->record(e.s);
  e.stream->synchronize("GpuEngine::run");
  stats.loss = e.host_loss_sum(e.m);
  stats.compute_s = e.ev_compute_end->elapsed_ms_since(*e.ev_start) * 1e-3;
  stats.dp_wait_s = e.ev_wait_end->elapsed_ms_since(*e.ev_compute_end) * 1e-3;
  return stats;
}

StepStats GpuEngine::evaluate(const FillBatch& fill, int microbatches) {
  Impl& e = *impl_;
  STRATA_CHECK(microbatches >= 1 && microbatches <= e.m, "evaluate: ", microbatches, " micro-batches, expected 1 to ",
               e.m);
  e.use_device();
  StepStats stats;
  e.ev_start->record(e.s);
  for (int mb = 0; mb < microbatches; ++mb) e.forward_microbatch(mb, fill, 0.0f, false);
  e.ev_compute_end->record(e.s);
  e.stream->synchronize("GpuEngine::evaluate");
  stats.loss = e.host_loss_sum(microbatches);
  stats.compute_s = e.ev_compute_end->elapsed_ms_since(*e.ev_start) * 1e-3;
  return stats;
}

double GpuEngine::grad_norm() {
  impl_->use_device();
  return impl_->grad_norm();
}

double GpuEngine::optimizer_step(double lr, double grad_scale) {
  impl_->use_device();
  return impl_->optimizer_step(lr, grad_scale);
}

void GpuEngine::synchronize() {
  impl_->use_device();
  impl_->stream->synchronize("GpuEngine::synchronize");
}

int GpuEngine::microbatches() const { return impl_->m; }
const model::ParameterTable& GpuEngine::table() const { return impl_->table; }

std::string GpuEngine::device_name() const {
  cudaDeviceProp prop{};
  STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, impl_->device));
  return prop.name;
}

std::size_t GpuEngine::parameter_bytes() const { return impl_->param_plan.total_bytes(); }
std::size_t GpuEngine::optimizer_bytes() const { return impl_->optim_plan.total_bytes(); }
std::size_t GpuEngine::activation_bytes() const { return impl_->act_plan.total_bytes(); }

std::string GpuEngine::description() const {
  const Impl& e = *impl_;
  e.use_device();
  std::ostringstream os;
  const auto [free_b, total_b] = kc::device_memory_info();
  os << "GPU engine on device " << e.device << " (" << device_name() << ", " << format_bytes(double(total_b))
     << ", " << format_bytes(double(free_b)) << " free)\n"
     << "  tp " << e.tp_rank << "/" << e.tp_size << ", dp " << e.dp_rank << "/" << e.dp_size << ", zero_stage "
     << (e.zero1 ? 1 : 0) << ", DP reduction " << (e.bf16_reduce ? "bf16" : "fp32") << ", " << e.buckets.size()
     << " buckets, sequence parallel " << (e.sp ? "on" : "off") << ", recompute "
     << (e.recompute ? "full" : "none") << ", " << e.m << " micro-batches of " << e.B
     << " x " << e.T << "\n";
  e.param_plan.print(os, 8);
  e.optim_plan.print(os, 8);
  e.act_plan.print(os, 12);
  e.host_plan.print(os, 4);
  const std::size_t peak = e.param_plan.total_bytes() + e.optim_plan.total_bytes() + e.act_plan.total_bytes();
  os << "device memory planned: " << format_bytes(double(peak)) << " (plus the cuBLAS work space and NCCL buffers)\n";
  return os.str();
}

void GpuEngine::download_parameters(float* host) {
  impl_->use_device();
  impl_->gather_pieces(impl_->master, host);
}

void GpuEngine::download_gradients(float* host) {
  Impl& e = *impl_;
  e.use_device();
  e.gather_pieces(e.zero1 ? e.gshard : e.grads, host);
}

void GpuEngine::upload_parameters(const float* host) {
  Impl& e = *impl_;
  e.use_device();
  // The fp32 gradient buffer is the staging area (it is zeroed again at the end; run()
  // zeroes it anyway): whole flat buffer in, bf16 copy cast from it, master pieces copied.
  // The copy is enqueued on the compute stream, in order with the cast that reads it: a plain
  // cudaMemcpy from pageable memory runs on the legacy default stream, which the non-blocking
  // compute stream does not wait for, and may return before its DMA has landed (CUDA runtime
  // "API synchronization behavior"). The host waits for the stream before returning, so
  // `host` may be freed right after.
  STRATA_CUDA_CHECK(cudaMemsetAsync(e.grads, 0, std::size_t(e.padded) * sizeof(float), e.s));
  STRATA_CUDA_CHECK(
      cudaMemcpyAsync(e.grads, host, std::size_t(e.numel) * sizeof(float), cudaMemcpyHostToDevice, e.s));
  kc::cast_f32_to_bf16(e.params, e.grads, e.padded, e.s);
  for (std::size_t i = 0; i < e.owned.size(); ++i)
    STRATA_CUDA_CHECK(cudaMemcpyAsync(e.master + e.shard_offset[i], e.grads + e.owned[i].begin,
                                      std::size_t(e.owned[i].size()) * sizeof(float), cudaMemcpyDeviceToDevice, e.s));
  STRATA_CUDA_CHECK(cudaMemsetAsync(e.grads, 0, std::size_t(e.padded) * sizeof(float), e.s));
  e.stream->synchronize("GpuEngine::upload_parameters");
}

// ---- checkpoints -------------------------------------------------------------------------------

const std::vector<Range>& GpuEngine::owned_pieces() const { return impl_->owned; }
const std::vector<std::int64_t>& GpuEngine::piece_offsets() const { return impl_->shard_offset; }
std::int64_t GpuEngine::padded_numel() const { return impl_->padded; }
std::int64_t GpuEngine::state_numel() const { return impl_->state_elems; }
bool GpuEngine::sharded() const { return impl_->zero1; }
long GpuEngine::steps_taken() const { return impl_->step; }
void GpuEngine::set_steps_taken(long steps) { impl_->step = steps; }

void GpuEngine::download_state(float* params, float* exp_avg, float* exp_avg_sq) {
  Impl& e = *impl_;
  e.use_device();
  e.stream->synchronize("GpuEngine::download_state");
  for (std::size_t i = 0; i < e.owned.size(); ++i)
    STRATA_CUDA_CHECK(cudaMemcpy(params + e.owned[i].begin, e.master + e.shard_offset[i],
                                 std::size_t(e.owned[i].size()) * sizeof(float), cudaMemcpyDeviceToHost));
  const std::size_t bytes = std::size_t(e.state_elems) * sizeof(float);
  STRATA_CUDA_CHECK(cudaMemcpy(exp_avg, e.adam_m, bytes, cudaMemcpyDeviceToHost));
  STRATA_CUDA_CHECK(cudaMemcpy(exp_avg_sq, e.adam_v, bytes, cudaMemcpyDeviceToHost));
}

void GpuEngine::upload_state(const float* params, const float* exp_avg, const float* exp_avg_sq) {
  Impl& e = *impl_;
  upload_parameters(params);  // master pieces and the bf16 copy; synchronises
  // On the compute stream, then waited for (see upload_parameters): the next AdamW kernel runs
  // on that stream and must see the moments.
  const std::size_t bytes = std::size_t(e.state_elems) * sizeof(float);
  STRATA_CUDA_CHECK(cudaMemcpyAsync(e.adam_m, exp_avg, bytes, cudaMemcpyHostToDevice, e.s));
  STRATA_CUDA_CHECK(cudaMemcpyAsync(e.adam_v, exp_avg_sq, bytes, cudaMemcpyHostToDevice, e.s));
  e.stream->synchronize("GpuEngine::upload_state");
}

}  // namespace strata::parallel
