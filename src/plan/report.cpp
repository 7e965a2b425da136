// Rendering of planner results as text and JSON.
#include "strata/plan/report.hpp"

#include <cmath>
#include <sstream>

#include "strata/core/memory_plan.hpp"

namespace strata::plan {

namespace {
constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

std::string gib(double bytes) { return fmt("%.1f GiB", bytes / GiB); }

std::string seconds(double s) {
  if (s >= 1.0) return fmt("%.3f s", s);
  if (s >= 1e-3) return fmt("%.2f ms", s * 1e3);
  return fmt("%.1f us", s * 1e6);
}

std::string feature_note(const Layout& l) {
  std::string s;
  if (l.sequence_parallel) s += "sequence parallelism on, ";
  if (l.zero >= 1) s += "ZeRO-1 (optimizer state sharded over dp), ";
  if (l.vpp > 1) s += std::to_string(l.vpp) + " virtual stages per rank (interleaved 1F1B), ";
  if (l.recompute == Recompute::selective) s += "selective recomputation, ";
  if (s.empty()) return s;
  return s.substr(0, s.size() - 2);
}
}  // namespace

std::string describe_request(const PlanRequest& r) {
  const Workload& w = r.workload;
  const config::ClusterConfig& c = r.cluster;
  const FlopsPerToken f = flops_per_token(w.model, w.counts, w.seq_len, Recompute::none);
  std::ostringstream os;
  os << "model   " << w.model.name << ": " << format_count(double(w.counts.total)) << " parameters ("
     << format_count(double(w.counts.matmul)) << " in matmuls), " << w.model.num_layers << " layers, d_model "
     << w.model.d_model << ", heads " << w.model.num_heads << "/" << w.model.kv_heads() << ", vocab "
     << w.model.vocab_size << "\n";
  os << "cluster " << c.name << ": " << r.gpus << " x " << c.gpu << " (" << fmt("%.1f", c.memory_gib) << " GiB, "
     << fmt("%g", c.peak_tflops()) << " TFLOP/s " << config::to_string(c.precision) << " peak, sustained "
     << fmt("%.2f", c.sustained_fraction) << ", " << c.gpus_per_node << " per node)\n";
  os << "batch   " << r.global_batch << " sequences x " << w.seq_len << " tokens = "
     << format_count(double(r.global_batch) * w.seq_len) << " tokens/step; " << format_sci(f.model)
     << " model FLOPs/token; target " << format_count(r.tokens) << " tokens ("
     << format_sci(f.model * r.tokens) << " FLOPs)\n";
  return os.str();
}

Table layout_table(const PlanResult& result, int top) {
  Table t({"#", "layout", "mem/GPU", "step", "tokens/s", "TFLOP/s/GPU", "MFU", "bubble", "days", "GPU-hours"});
  const std::size_t n = top > 0 ? std::min<std::size_t>(std::size_t(top), result.fitting.size()) : result.fitting.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Candidate& c = result.fitting[i];
    const double bubble = c.time.bubble / c.time.total;
    t.add_row({std::to_string(i + 1), to_string(c.layout), gib(c.memory.total()), seconds(c.time.total),
               format_count(c.time.tokens_per_s), fmt("%.1f", c.time.model_tflops_per_gpu),
               fmt("%.1f%%", 100 * c.time.mfu), fmt("%.1f%%", 100 * bubble), fmt("%.1f", c.run.days),
               format_count(c.run.gpu_hours)});
  }
  return t;
}

std::string explain(const PlanRequest& r, const Candidate& c) {
  const Layout& l = c.layout;
  const MemoryBreakdown& m = c.memory;
  const StepTime& t = c.time;
  std::ostringstream os;
  os << "layout " << to_string(l) << ": tp " << l.tp << " x pp " << l.pp << " x dp " << l.dp << " = " << l.gpus()
     << " GPUs; " << l.micro_batches << " micro-batches of " << l.micro_batch << " per DP rank per step";
  const std::string note = feature_note(l);
  os << (note.empty() ? "" : "; " + note) << "; recomputation " << to_string(l.recompute) << "; precision "
     << config::to_string(l.precision) << "\n\n";
  const BytesPerParam bpp = bytes_per_param(l.precision, l.zero, l.dp);
  os << "memory per GPU (stage " << m.stage << " of " << l.pp << ", the most loaded)\n";
  os << "  parameters on this rank  " << format_count(m.params_on_rank) << "\n";
  os << "  weights                  " << gib(m.weights) << "  (" << bpp.weights << " B/param)\n";
  os << "  gradients                " << gib(m.gradients) << "  (" << bpp.gradients << " B/param)\n";
  os << "  optimizer state          " << gib(m.optimizer) << "  (" << fmt("%.3g", bpp.optimizer) << " B/param"
     << (l.zero >= 1 && l.dp > 1 ? ", sharded over dp" : "") << ")\n";
  os << "  activations              " << gib(m.activations) << "  (" << format_bytes(m.activation_per_layer)
     << " per layer per micro-batch x " << r.workload.model.num_layers / l.pp << " layers x "
     << fmt("%.2f", m.in_flight) << " in flight, plus embedding/output)\n";
  os << "  communication buffers    " << gib(m.comm_buffers) << "\n";
  os << "  workspace/runtime        " << gib(m.workspace) << "\n";
  os << "  total                    " << gib(m.total()) << " of " << fmt("%.1f GiB", r.cluster.memory_gib)
     << (c.fits ? "  (fits)" : "  (OVER MEMORY)") << "\n\n";
  os << "time per step\n";
  os << "  compute                  " << seconds(t.compute) << "  (" << l.micro_batches << " x "
     << seconds(t.micro_batch) << " per micro-batch on the busiest stage)\n";
  os << "  tensor-parallel comm     " << seconds(t.tp_comm) << "\n";
  os << "  pipeline bubble          " << seconds(t.bubble) << "  ((p-1)/(v m) = "
     << fmt("%.3f", double(l.pp - 1) / (l.vpp * l.micro_batches)) << ")\n";
  os << "  pipeline send/recv       " << seconds(t.pp_comm) << "\n";
  os << "  data-parallel comm       " << seconds(t.dp_exposed) << " exposed of " << seconds(t.dp_comm) << "\n";
  os << "  optimizer step           " << seconds(t.optimizer) << "\n";
  os << "  total                    " << seconds(t.total) << "\n\n";
  os << "throughput " << format_count(t.tokens_per_s) << " tokens/s, " << fmt("%.1f", t.model_tflops_per_gpu)
     << " model TFLOP/s per GPU (" << fmt("%.1f", t.hardware_tflops_per_gpu) << " with recomputation), MFU "
     << fmt("%.1f%%", 100 * t.mfu) << "\n";
  os << "to " << format_count(r.tokens) << " tokens: " << fmt("%.1f", c.run.days) << " days, "
     << format_count(c.run.gpu_hours) << " GPU-hours";
  if (c.run.cost > 0) os << ", $" << format_count(c.run.cost);
  if (c.run.energy_mwh > 0) os << ", " << fmt("%.0f", c.run.energy_mwh) << " MWh";
  os << "\n";
  return os.str();
}

std::string launch_command(const PlanRequest& r, const Candidate& c, const std::string& model_path,
                           const std::string& job_path) {
  const Layout& l = c.layout;
  const int per_node = std::min(r.cluster.gpus_per_node, l.gpus());
  const int nodes = (l.gpus() + per_node - 1) / per_node;
  const double tokens_per_step = double(l.global_batch()) * r.workload.seq_len;
  const long steps = std::max(1L, long(std::ceil(r.tokens / tokens_per_step)));
  std::ostringstream os;
  // slurm/pretrain.sh runs `srun strata train --config $CONFIG ... <its arguments>` (slurm/launch.sh).
  os << "sbatch --nodes=" << nodes << " --ntasks-per-node=" << per_node;
  if (r.cluster.device == config::DeviceKind::cuda) os << " --gpus-per-node=" << per_node;
  os << " --export=ALL,CONFIG=" << job_path << " slurm/pretrain.sh --set model=" << model_path
     << " --set parallel.tp=" << l.tp << " --set parallel.pp=" << l.pp << " --set parallel.dp=" << l.dp
     << " --set parallel.micro_batch_size=" << l.micro_batch << " --set parallel.global_batch_size="
     << l.global_batch() << " --set train.seq_len=" << r.workload.seq_len << " --set train.steps=" << steps
     << " --set model.recompute=" << (l.recompute == Recompute::full ? "full" : "none")
     << " --set parallel.schedule=" << (l.vpp > 1 ? "interleaved_1f1b" : "1f1b")
     << " --set parallel.virtual_stages=" << l.vpp << " --set parallel.zero_stage=" << l.zero
     << " --set parallel.sequence_parallel=" << (l.sequence_parallel ? "true" : "false")
     << " --set hardware.device=" << (r.cluster.device == config::DeviceKind::cuda ? "cuda" : "cpu");
  if (l.recompute == Recompute::selective)
    os << "\n# selective recomputation is planned but not implemented by the trainer yet: it runs with none";
  return os.str();
}

nlohmann::json to_json(const Candidate& c) {
  const Layout& l = c.layout;
  return {{"layout", to_string(l)},
          {"tp", l.tp}, {"pp", l.pp}, {"dp", l.dp}, {"virtual_stages", l.vpp},
          {"micro_batch_size", l.micro_batch}, {"micro_batches", l.micro_batches}, {"zero", l.zero},
          {"sequence_parallel", l.sequence_parallel}, {"recompute", to_string(l.recompute)},
          {"fits", c.fits},
          {"memory_bytes", {{"stage", c.memory.stage}, {"params_on_rank", c.memory.params_on_rank},
                            {"weights", c.memory.weights}, {"gradients", c.memory.gradients},
                            {"optimizer", c.memory.optimizer}, {"activations", c.memory.activations},
                            {"in_flight", c.memory.in_flight}, {"comm_buffers", c.memory.comm_buffers},
                            {"workspace", c.memory.workspace}, {"total", c.memory.total()}}},
          {"time_s", {{"micro_batch", c.time.micro_batch}, {"compute", c.time.compute}, {"tp_comm", c.time.tp_comm},
                      {"bubble", c.time.bubble}, {"pp_comm", c.time.pp_comm}, {"dp_comm", c.time.dp_comm},
                      {"dp_exposed", c.time.dp_exposed}, {"optimizer", c.time.optimizer}, {"step", c.time.total}}},
          {"tokens_per_s", c.time.tokens_per_s}, {"model_tflops_per_gpu", c.time.model_tflops_per_gpu},
          {"hardware_tflops_per_gpu", c.time.hardware_tflops_per_gpu}, {"mfu", c.time.mfu},
          {"run", {{"days", c.run.days}, {"gpu_hours", c.run.gpu_hours}, {"cost", c.run.cost},
                   {"energy_mwh", c.run.energy_mwh}}}};
}

nlohmann::json to_json(const PlanRequest& r, const PlanResult& result, int top) {
  nlohmann::json layouts = nlohmann::json::array();
  const std::size_t n = top > 0 ? std::min<std::size_t>(std::size_t(top), result.fitting.size()) : result.fitting.size();
  for (std::size_t i = 0; i < n; ++i) layouts.push_back(to_json(result.fitting[i]));
  return {{"model", r.workload.model.name}, {"parameters", r.workload.counts.total},
          {"matmul_parameters", r.workload.counts.matmul}, {"cluster", r.cluster.name}, {"gpu", r.cluster.gpu},
          {"gpus", r.gpus}, {"global_batch", r.global_batch}, {"seq_len", r.workload.seq_len}, {"tokens", r.tokens},
          {"enumerated", result.enumerated}, {"over_memory", result.over_memory},
          {"fitting", result.fitting.size()}, {"usable_bytes_per_gpu", result.usable_bytes}, {"layouts", layouts}};
}

}  // namespace strata::plan
