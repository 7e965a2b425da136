// plan_engine (engine.hpp): the one statement of what an engine holds on one rank, for every
// backend; the engine allocates it, the dry run and the planner print it.
#include <algorithm>
#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/parallel/engine.hpp"

namespace strata::parallel {

std::vector<int> layers_per_virtual_stage(const config::ModelConfig& model, const config::ParallelConfig& p) {
  const int n = p.pp * p.virtual_stages;
  if (!p.layers_per_stage.empty()) return p.layers_per_stage;
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(model.num_layers / n + (i < model.num_layers % n ? 1 : 0));
  return out;
}

model::BackendSpec backend_spec(config::DeviceKind device) {
  return device == config::DeviceKind::cuda ? model::cuda_backend_spec()
                                            : model::cpu_backend_spec(DType::f32);
}

EnginePlan plan_engine(const config::ModelConfig& model, const config::ParallelConfig& parallel,
                       const config::OptimConfig& optim, int seq_len, int microbatches,
                       const comm::GridShape& shape, const comm::GridCoord& coord,
                       const model::BackendSpec& spec) {
  STRATA_CHECK(microbatches >= 1, "an engine step needs at least one micro-batch (got ", microbatches, ")");
  EnginePlan e;
  e.shape = shape;
  e.coord = coord;
  e.spec = spec;
  e.micro_batch_size = parallel.micro_batch_size;
  e.seq_len = seq_len;
  e.microbatches = microbatches;
  e.schedule_kind = parallel.schedule;
  STRATA_CHECK(shape.cp == 1 || seq_len % (2 * shape.cp) == 0, "parallel.cp = ", shape.cp,
               " needs a sequence length (", seq_len, ") divisible by 2 x cp = ", 2 * shape.cp);
  const int pp = shape.pp, stage = coord.pp_rank, v = parallel.virtual_stages;
  e.schedule = build_schedule(parallel.schedule, pp, stage, microbatches, v);
  const std::vector<int> lps = layers_per_virtual_stage(model, parallel);
  STRATA_CHECK(int(lps.size()) == pp * v, "parallel.layers_per_stage lists ", lps.size(),
               " stages, expected pp x ", "virtual_stages = ", pp * v);
  const int last_vs = pp * v - 1;
  for (int c = 0; c < v; ++c) {
    const int vs = c * pp + stage;
    model::ChunkPlacement place;
    place.tp_size = shape.tp;
    place.tp_rank = coord.tp_rank;
    for (int i = 0; i < vs; ++i) place.first_layer += lps[std::size_t(i)];
    place.num_layers = lps[std::size_t(vs)];
    place.has_embedding = vs == 0;
    place.has_head = vs == last_vs;
    place.sequence_parallel = parallel.sequence_parallel;
    place.flat_multiple = shape.dp;
    if (parallel.zero_stage >= 2 && shape.dp > 1)  // ZeRO-2/3: units of equal DP pieces, no flat gradient
      place.unit_multiple = shape.dp, place.sharded_grads = true;
    place.sharded_params = parallel.zero_stage == 3 && shape.dp > 1;  // ZeRO-3: no full parameters
    place.vocab_multiple = spec.vocab_multiple;
    place.cp_size = shape.cp;  // the stage holds seq_len / cp positions of each sequence
    place.cp_rank = coord.cp_rank;
    place.cp_mode = parallel.cp_mode;
    place.split_backward = parallel.schedule == config::PipelineSchedule::zb_h1;
    const int slots = std::max(1, max_in_flight(e.schedule, c));
    ChunkPlan cp{
        vs,    place,
        slots, model::StagePlan(model, place, parallel.micro_batch_size, seq_len / shape.cp, slots, spec),
        {},    {}};
    // The tied embedding lives on the first and the last virtual stage: its gradient is summed
    // over both after the schedule, so its DP reduction waits for that.
    std::vector<Range> defer;
    const model::ParamInfo* wte = cp.stage.table.find("embed.wte");
    if (model.tied_embeddings && last_vs > 0 && wte) defer.push_back({wte->offset, wte->offset + wte->numel});
    cp.sharding =
        make_sharding_plan(cp.stage.table, optim, parallel, shape.dp, coord.dp_rank, std::move(defer));
    cp.optimizer = plan_optimizer_memory(cp.sharding, spec);
    e.chunks.push_back(std::move(cp));
  }
  // Pipeline exchange: only what a chunk exchanges (no input on the first virtual stage, no
  // output gradient on the last).
  e.act_elems = e.chunks.front().stage.dims.Nsp * model.d_model;
  e.exchange.resize(std::size_t(v));
  for (int c = 0; c < v; ++c) {
    const ChunkPlan& cp = e.chunks[std::size_t(c)];
    for (int s = 0; s < cp.slots; ++s) {
      const std::string p = "chunk" + std::to_string(c) + ".slot" + std::to_string(s) + ".";
      const std::int64_t in = cp.virtual_stage == 0 ? 0 : e.act_elems;
      const std::int64_t out = cp.virtual_stage == last_vs ? 0 : e.act_elems;
      e.exchange[std::size_t(c)].push_back({e.pipeline.add(p + "act_in", {in}, spec.act, "step"),
                                            e.pipeline.add(p + "grad_in", {out}, spec.grad, "step"),
                                            e.pipeline.add(p + "grad_out", {in}, spec.grad, "step")});
    }
  }
  const std::int64_t N = std::int64_t(parallel.micro_batch_size) * seq_len;
  e.host_tokens = e.host.add("tokens", {microbatches, N}, DType::i32, "step");
  e.host_targets = e.host.add("targets", {microbatches, N}, DType::i32, "step");
  e.host_losses = e.host.add("losses", {microbatches, N}, DType::f32, "step");
  return e;
}

std::size_t Engine::optimizer_bytes() const {
  std::size_t b = 0;
  for (const ChunkPlan& c : plan().chunks) b += 2 * std::size_t(c.sharding.state_elems) * sizeof(float);
  return b;
}

std::size_t EnginePlan::parameter_bytes() const {
  std::size_t b = 0;
  for (const ChunkPlan& c : chunks)
    b += c.stage.weights.total_bytes() + c.optimizer.gradient_bytes() + c.optimizer.parameter_bytes();
  return b;
}

std::size_t EnginePlan::optimizer_bytes() const {
  std::size_t b = 0;
  for (const ChunkPlan& c : chunks)
    b += c.optimizer.plan.total_bytes() - c.optimizer.gradient_bytes() - c.optimizer.parameter_bytes();
  return b;
}

std::size_t EnginePlan::activation_bytes() const {
  std::size_t b = pipeline.total_bytes();
  for (const ChunkPlan& c : chunks) b += c.stage.acts.total_bytes();
  return b;
}

std::string EnginePlan::describe(std::size_t rows) const {
  std::ostringstream os;
  const ChunkPlan& first = chunks.front();
  // A long schedule shortened to its start and end (the steady phase repeats).
  std::string schedule_text = to_string(schedule);
  if (schedule.size() > 48) {
    const std::vector<PipelineAction> head(schedule.begin(), schedule.begin() + 32),
        tail(schedule.end() - 8, schedule.end());
    schedule_text =
        to_string(head) + " ... " + to_string(tail) + " (" + std::to_string(schedule.size()) + " actions)";
  }
  os << "engine: " << spec.name << ", rank (tp " << coord.tp_rank << "/" << shape.tp << ", dp "
     << coord.dp_rank << "/" << shape.dp << ", pp " << coord.pp_rank << "/" << shape.pp << ")\n"
     << "  schedule " << config::to_string(schedule_kind) << ", " << microbatches << " micro-batches of "
     << micro_batch_size << " x " << seq_len << ": " << schedule_text << "\n"
     << "  communicator groups (" << (spec.device == Device::cuda ? "NCCL" : "MPI") << "): tp of " << shape.tp
     << " ranks, dp of " << shape.dp << ", pp of " << shape.pp
     << (shape.cp > 1 ? ", cp of " + std::to_string(shape.cp) +
                            (first.place.cp_mode == config::CpMode::ulysses ? " (Ulysses all-to-all)"
                                                                            : " (ring attention)")
                      : "")
     << (shape.pp > 1 && (coord.pp_rank == 0 || coord.pp_rank == shape.pp - 1)
             ? ", embedding {first, last stage}"
             : "")
     << "\n";
  for (const ChunkPlan& c : chunks) {
    const model::StageDims& d = c.stage.dims;
    os << "  chunk " << (&c - &first) << ": virtual stage " << c.virtual_stage << ", layers " << d.first_layer
       << ".." << d.first_layer + d.L - 1 << (c.place.has_embedding ? ", embedding" : "")
       << (c.place.has_head ? ", head" : "") << ", " << c.slots << " activation slot"
       << (c.slots > 1 ? "s" : "") << ", " << c.stage.table.numel() << " parameters, "
       << c.sharding.buckets.size() << " gradient buckets, ZeRO-" << c.sharding.zero_stage
       << (c.sharding.reduce_bf16 ? ", bf16 reduction" : "") << "\n";
    c.stage.weights.print(os, rows);
    c.stage.acts.print(os, rows);
    c.optimizer.plan.print(os, rows);
  }
  pipeline.print(os, rows);
  host.print(os, rows);
  os << "device memory planned: " << format_bytes(double(device_bytes())) << " (parameters "
     << format_bytes(double(parameter_bytes())) << ", optimizer " << format_bytes(double(optimizer_bytes()))
     << ", activations and work space " << format_bytes(double(activation_bytes())) << ")";
  if (spec.device == Device::cuda) os << ", plus the cuBLAS work space and NCCL buffers";
  os << "\n";
  return os.str();
}

}  // namespace strata::parallel
