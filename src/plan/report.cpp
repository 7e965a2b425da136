// Rendering of planner results as text and JSON.
#include "strata/plan/report.hpp"

#include <cmath>
#include <sstream>

#include "strata/config/load.hpp"
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
  if (l.zero == 1) s += "ZeRO-1 (optimizer state sharded over dp), ";
  if (l.zero == 2) s += "ZeRO-2 (optimizer state and gradients sharded over dp), ";
  if (l.zero == 3) s += "ZeRO-3 (optimizer state, gradients and parameters sharded over dp), ";
  if (l.vpp > 1) s += std::to_string(l.vpp) + " virtual stages per rank (interleaved 1F1B), ";
  if (l.zb) s += "zero-bubble schedule zb_h1 (weight-gradient passes in the bubble), ";
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
  os << "cluster " << c.name << ": " << r.gpus << " x " << c.gpu << " (" << fmt("%.1f", c.memory_gib)
     << " GiB, " << fmt("%g", c.peak_tflops()) << " TFLOP/s " << config::to_string(c.precision)
     << " peak, sustained " << fmt("%.2f", c.sustained_fraction) << ", " << c.gpus_per_node << " per node"
     << (c.oversubscribe > 1 ? ", " + std::to_string(c.oversubscribe) + " ranks per core slot" : "") << ")\n";
  if (!c.calibration.empty()) os << "        calibrated: " << c.calibration << "\n";
  if (const std::string a = describe_assumptions(c); !a.empty())
    os << "        ASSUMED (not validated; every time figure below is given at both ends as (low-high)): "
       << a << "\n";
  os << "batch   " << r.global_batch << " sequences x " << w.seq_len
     << " tokens = " << format_count(double(r.global_batch) * w.seq_len) << " tokens/step; "
     << format_sci(f.model) << " model FLOPs/token; target " << format_count(r.tokens) << " tokens ("
     << format_sci(f.model * r.tokens) << " FLOPs)\n";
  return os.str();
}

Table layout_table(const PlanResult& result, int top) {
  Table t(
      {"#", "layout", "mem/GPU", "step", "tokens/s", "TFLOP/s/GPU", "MFU", "bubble", "days", "GPU-hours"});
  const std::size_t n =
      top > 0 ? std::min<std::size_t>(std::size_t(top), result.fitting.size()) : result.fitting.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Candidate& c = result.fitting[i];
    const double bubble = c.time.bubble / c.time.critical_path;  // share of one rank's critical path
    const auto range = [&](auto get, auto format) {
      return with_range(get(c.time, c.run), get(c.fast, c.run_fast), get(c.slow, c.run_slow), c.uncertain,
                        format);
    };
    const auto rate_range = [&](auto get, auto format) {  // throughput: the slow case is the low end
      return with_range(get(c.time), get(c.slow), get(c.fast), c.uncertain, format);
    };
    t.add_row(
        {std::to_string(i + 1), to_string(c.layout), gib(c.memory.total()),
         range([](const StepTime& s, const RunTime&) { return s.total; }, seconds),
         rate_range([](const StepTime& s) { return s.tokens_per_s; }, format_count),
         rate_range([](const StepTime& s) { return s.model_tflops_per_gpu; },
                    [](double v) { return fmt(v >= 10 ? "%.1f" : "%.3g", v); }),
         rate_range([](const StepTime& s) { return s.mfu; }, [](double v) { return fmt("%.1f%%", 100 * v); }),
         fmt("%.1f%%", 100 * bubble),
         range([](const StepTime&, const RunTime& r) { return r.days; },
               [](double v) { return fmt("%.1f", v); }),
         range([](const StepTime&, const RunTime& r) { return r.gpu_hours; }, format_count)});
  }
  return t;
}

std::string explain(const PlanRequest& r, const Candidate& c) {
  const Layout& l = c.layout;
  const MemoryBreakdown& m = c.memory;
  const StepTime& t = c.time;
  std::ostringstream os;
  os << "layout " << to_string(l) << ": tp " << l.tp << " x pp " << l.pp << " x dp " << l.dp
     << (l.cp > 1 ? " x cp " + std::to_string(l.cp) : std::string()) << " = " << l.gpus() << " GPUs; "
     << l.micro_batches << " micro-batches of " << l.micro_batch << " per DP rank per step";
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
  // Every time term with what it is computed from; a term that depends on an assumed constant is
  // followed by its range (the cluster's assumptions at the fast and at the slow end).
  const config::ClusterConfig& cl = r.cluster;
  const auto term = [&](double StepTime::*field) {
    return with_range(t.*field, c.fast.*field, c.slow.*field, c.uncertain, seconds);
  };
  const auto constant = [&](const char* key, double value) {
    for (const Assumption& a : assumptions(cl))
      if (a.key == key)
        return std::string(key) + " " + fmt("%g", value) + ", ASSUMED " + fmt("%g", a.low) + "-" +
               fmt("%g", a.high);
    const bool fitted = cl.calibration.find(key) != std::string::npos;  // named by the calibration
    return std::string(key) + " " + fmt("%g", value) + (fitted ? ", calibrated" : "");
  };
  const bool megatron = l.framework == Framework::megatron_lm;
  os << "time per step (each term: what it is computed from)\n";
  os << "  compute                  " << term(&StepTime::compute) << "  (" << l.micro_batches << " x "
     << seconds(t.micro_batch) << " per micro-batch on the busiest stage)\n";
  os << "    GEMMs                  " << term(&StepTime::gemm) << "  matmul FLOPs / (peak "
     << fmt("%g", cl.peak_tflops()) << " TFLOP/s x " << constant("sustained_fraction", cl.sustained_fraction);
  if (cl.small_gemm_width > 0)
    os << " x w/(w + " << constant("small_gemm_width", cl.small_gemm_width)
       << "), w = C/t = " << fmt("%g", double(r.workload.model.d_model) / l.tp);
  os << ")\n";
  os << "    attention products     " << term(&StepTime::attention) << "  Q K^T and A V FLOPs / (peak x "
     << (megatron ? constant("sustained_fraction", cl.sustained_fraction) + ": batched GEMMs"
                  : constant("attention_fraction", cl.attention_efficiency()) + ": strata's attention kernel")
     << ")\n";
  os << "    element-wise           " << term(&StepTime::elementwise) << "  "
     << (l.recompute == Recompute::full ? 4 : 3) << " passes over each layer's activations / ("
     << fmt("%g", cl.memory_bandwidth_gb_per_s) << " GB/s x "
     << constant("elementwise_fraction", cl.elementwise_fraction) << ")\n";
  const bool intra = l.tp <= cl.gpus_per_node;
  os << "  tensor-parallel comm     " << term(&StepTime::tp_comm)
     << "  ring all-reduces (Thakur et al. 2005) at "
     << constant(intra ? "intra_node_gb_per_s" : "inter_node_gb_per_s",
                 intra ? cl.intra_node_gb_per_s : cl.inter_node_gb_per_s)
     << " GB/s, "
     << constant(intra ? "intra_node_alpha_us" : "inter_node_alpha_us",
                 intra ? cl.intra_node_alpha_us : cl.inter_node_alpha_us)
     << " us per step\n";
  if (l.zb)
    os << "  pipeline bubble          " << term(&StepTime::bubble)
       << "  (zb_h1: (p-1)(F+B-W)/(m(F+B+W)) of the micro-batches' time, Qi et al. 2023 sec. 3.1)\n";
  else
    os << "  pipeline bubble          " << term(&StepTime::bubble)
       << "  ((p-1)/(v m) = " << fmt("%.3f", double(l.pp - 1) / (l.vpp * l.micro_batches))
       << ", Narayanan et al. 2021 sec. 2.2)\n";
  os << "  pipeline send/recv       " << term(&StepTime::pp_comm) << "\n";
  os << "  data-parallel comm       " << term(&StepTime::dp_exposed) << " exposed of " << seconds(t.dp_comm)
     << "  (" << constant("overlap_efficiency", cl.overlap_efficiency) << ")\n";
  if (l.cp > 1)
    os << "  context-parallel comm    " << term(&StepTime::cp_exposed) << " exposed of " << seconds(t.cp_comm)
       << (l.ulysses
               ? "  (Ulysses: 4 all-to-alls per layer and micro-batch, not overlapped, and the gradient "
                 "all-reduce over cp)\n"
               : "  (ring K/V hops hidden behind each attention block, dK/dV hops and the gradient "
                 "all-reduce "
                 "over cp not)\n");
  os << "  optimizer step           " << term(&StepTime::optimizer)
     << "  AdamW bytes / (bandwidth x elementwise_fraction)\n";
  if (t.node_work > 0)
    os << "  node work (shared cores) " << term(&StepTime::node_work) << "  mean busy time of the "
       << cl.oversubscribe << " ranks per core slot; the step is the larger of it and the critical path "
       << seconds(t.critical_path) << " / " << cl.oversubscribe << "\n";
  os << "  total                    " << term(&StepTime::total) << "\n\n";
  const auto rate = [&](double StepTime::*field, auto format) {
    return with_range(t.*field, c.slow.*field, c.fast.*field, c.uncertain, format);
  };
  os << "throughput " << rate(&StepTime::tokens_per_s, format_count) << " tokens/s, "
     << rate(&StepTime::model_tflops_per_gpu, [](double v) { return fmt(v >= 10 ? "%.1f" : "%.3g", v); })
     << " model TFLOP/s per GPU ("
     << fmt(t.hardware_tflops_per_gpu >= 10 ? "%.1f" : "%.3g", t.hardware_tflops_per_gpu)
     << " with recomputation), MFU " << rate(&StepTime::mfu, [](double v) { return fmt("%.1f%%", 100 * v); })
     << "\n";
  const auto run = [&](double RunTime::*field, auto format) {
    return with_range(c.run.*field, c.run_fast.*field, c.run_slow.*field, c.uncertain, format);
  };
  os << "to " << format_count(r.tokens)
     << " tokens: " << run(&RunTime::days, [](double v) { return fmt("%.1f", v); }) << " days, "
     << run(&RunTime::gpu_hours, format_count) << " GPU-hours";
  if (c.run.cost > 0) os << ", $" << run(&RunTime::cost, format_count);
  if (c.run.energy_mwh > 0)
    os << ", " << run(&RunTime::energy_mwh, [](double v) { return fmt("%.0f", v); }) << " MWh";
  os << "\n";
  if (c.uncertain)
    os << "(low-high): " << describe_assumptions(cl) << " at the fast and at the slow end of every range\n";
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
     << (l.cp > 1 ? " --set parallel.cp=" + std::to_string(l.cp) : "")
     << (l.cp > 1 && l.ulysses ? " --set parallel.cp_mode=ulysses" : "")
     << " --set parallel.micro_batch_size=" << l.micro_batch
     << " --set parallel.global_batch_size=" << l.global_batch()
     << " --set train.seq_len=" << r.workload.seq_len << " --set train.steps=" << steps
     << " --set model.recompute=" << (l.recompute == Recompute::full ? "full" : "none")
     << " --set parallel.schedule=" << config::to_string(schedule_of(l))
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
          {"tp", l.tp},
          {"pp", l.pp},
          {"dp", l.dp},
          {"virtual_stages", l.vpp},
          {"micro_batch_size", l.micro_batch},
          {"micro_batches", l.micro_batches},
          {"zero", l.zero},
          {"sequence_parallel", l.sequence_parallel},
          {"recompute", to_string(l.recompute)},
          {"schedule", config::to_string(schedule_of(l))},
          {"fits", c.fits},
          {"memory_bytes",
           {{"stage", c.memory.stage},
            {"params_on_rank", c.memory.params_on_rank},
            {"weights", c.memory.weights},
            {"gradients", c.memory.gradients},
            {"optimizer", c.memory.optimizer},
            {"activations", c.memory.activations},
            {"in_flight", c.memory.in_flight},
            {"comm_buffers", c.memory.comm_buffers},
            {"workspace", c.memory.workspace},
            {"total", c.memory.total()}}},
          {"time_s",
           {{"micro_batch", c.time.micro_batch},
            {"compute", c.time.compute},
            {"gemm", c.time.gemm},
            {"attention", c.time.attention},
            {"elementwise", c.time.elementwise},
            {"node_work", c.time.node_work},
            {"tp_comm", c.time.tp_comm},
            {"bubble", c.time.bubble},
            {"pp_comm", c.time.pp_comm},
            {"dp_comm", c.time.dp_comm},
            {"dp_exposed", c.time.dp_exposed},
            {"optimizer", c.time.optimizer},
            {"step", c.time.total}}},
          {"time_range_s",
           {{"step_fast", c.fast.total}, {"step_slow", c.slow.total}, {"assumptions", c.uncertain}}},
          {"tokens_per_s", c.time.tokens_per_s},
          {"model_tflops_per_gpu", c.time.model_tflops_per_gpu},
          {"hardware_tflops_per_gpu", c.time.hardware_tflops_per_gpu},
          {"mfu", c.time.mfu},
          {"run",
           {{"days", c.run.days},
            {"gpu_hours", c.run.gpu_hours},
            {"cost", c.run.cost},
            {"energy_mwh", c.run.energy_mwh},
            {"days_range", {c.run_fast.days, c.run_slow.days}},
            {"gpu_hours_range", {c.run_fast.gpu_hours, c.run_slow.gpu_hours}}}}};
}

nlohmann::json to_json(const PlanRequest& r, const PlanResult& result, int top) {
  nlohmann::json layouts = nlohmann::json::array();
  const std::size_t n =
      top > 0 ? std::min<std::size_t>(std::size_t(top), result.fitting.size()) : result.fitting.size();
  for (std::size_t i = 0; i < n; ++i) layouts.push_back(to_json(result.fitting[i]));
  return {{"model", r.workload.model.name},
          {"parameters", r.workload.counts.total},
          {"matmul_parameters", r.workload.counts.matmul},
          {"cluster", r.cluster.name},
          {"gpu", r.cluster.gpu},
          {"calibration", r.cluster.calibration},
          {"assumptions", describe_assumptions(r.cluster)},
          {"gpus", r.gpus},
          {"global_batch", r.global_batch},
          {"seq_len", r.workload.seq_len},
          {"tokens", r.tokens},
          {"enumerated", result.enumerated},
          {"over_memory", result.over_memory},
          {"fitting", result.fitting.size()},
          {"usable_bytes_per_gpu", result.usable_bytes},
          {"layouts", layouts}};
}

}  // namespace strata::plan
