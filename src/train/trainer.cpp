#include "strata/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "strata/config/load.hpp"
#include "strata/core/log.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/loader.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/kernels/cpu/peak.hpp"
#include "strata/model/transformer.hpp"
#include "strata/optim/optimizer.hpp"

namespace strata::train {

namespace {

// Appends one JSON object per step to metrics.jsonl, formatted into a fixed buffer: no
// allocation in the step loop.
class MetricsFile {
 public:
  explicit MetricsFile(const std::filesystem::path& path) : file_(std::fopen(path.c_str(), "w")) {
    if (!file_) throw make_error("cannot create metrics file '", path.string(), "'");
  }
  ~MetricsFile() { std::fclose(file_); }
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  void write(const StepMetrics& m) {
    std::fprintf(file_,
                 "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, "
                 "\"tokens_per_s\": %.1f, \"step_ms\": %.3f, \"tflops\": %.6f, \"mfu\": %.5f, "
                 "\"mem_bytes\": %zu, \"data_wait_ms\": %.3f}\n",
                 m.step, m.loss, m.lr, m.grad_norm, m.tokens_per_s, m.step_ms, m.tflops, m.mfu,
                 m.mem_bytes, m.data_wait_ms);
    std::fflush(file_);
  }

 private:
  std::FILE* file_;
};

}  // namespace

TrainSummary run_training(const config::JobConfig& job) {
  const config::ModelConfig& mcfg = job.model;
  const config::TrainConfig& tcfg = job.train;
  const config::ParallelConfig& pcfg = job.parallel;
  const int dp = pcfg.dp > 0 ? pcfg.dp : 1;
  STRATA_CHECK(pcfg.tp == 1 && pcfg.pp == 1 && dp == 1,
               "parallel.tp/pp/dp = ", pcfg.tp, "/", pcfg.pp, "/", dp,
               ": this version of strata trains on one rank (tp = pp = dp = 1)");
  const int micro = pcfg.micro_batch_size;
  const int global = pcfg.global_batch_size > 0 ? pcfg.global_batch_size : micro * dp;
  STRATA_CHECK(global % (micro * dp) == 0, "parallel.global_batch_size (", global,
               ") must be a multiple of micro_batch_size x dp (", micro * dp, ")");
  const int accum = global / (micro * dp);
  const int T = tcfg.seq_len;

  // Threads: BLAS gets every core this rank may use.
  const int threads = job.hardware.threads > 0 ? job.hardware.threads
                                               : int(std::max(1u, std::thread::hardware_concurrency()));
  kernels::cpu::set_blas_threads(threads);

  // Components, each from its own config.
  // Data: the source yields global sample s; the loader thread reads this rank's micro-batches
  // ahead (DP slice of each global batch, DESIGN.md invariant 3).
  const std::unique_ptr<data::SampleSource> source = data::make_sample_source(job.data, mcfg, T, tcfg.seed);
  data::LoaderOptions loader_opt;
  loader_opt.micro_batch_size = micro;
  loader_opt.seq_len = T;
  loader_opt.global_batch_size = global;
  loader_opt.dp_size = dp;
  loader_opt.dp_rank = 0;
  loader_opt.prefetch = job.data.prefetch;
  data::AsyncLoader loader(*source, loader_opt);
  model::Transformer<float> model(mcfg, micro, T);
  model.init_parameters(tcfg.seed);
  optim::AdamW<float> adamw(job.optim, optim::make_param_groups(model.table(), job.optim),
                            model.table().numel());
  MemoryPlan batch_plan("batch");
  const auto i_inputs = batch_plan.add("inputs", {micro, T}, DType::i32, "step");
  const auto i_targets = batch_plan.add("targets", {micro, T}, DType::i32, "step");
  batch_plan.allocate();
  std::int32_t* inputs = batch_plan.data<std::int32_t>(i_inputs);
  std::int32_t* targets = batch_plan.data<std::int32_t>(i_targets);

  // Peak FLOP/s for MFU: configured, or this machine's measured fp32 FMA peak.
  double peak_tflops = job.hardware.peak_tflops;
  const char* peak_source = "hardware.peak_tflops";
  if (peak_tflops <= 0) {
    peak_tflops = kernels::cpu::measure_fp32_peak_gflops(threads, 0.3) / 1e3;
    peak_source = "measured fp32 FMA peak";
  }

  namespace fs = std::filesystem;
  fs::create_directories(tcfg.out_dir);
  {
    std::ofstream cfg_out(fs::path(tcfg.out_dir) / "config.yaml");
    cfg_out << config::to_yaml(job);
  }
  MetricsFile metrics(fs::path(tcfg.out_dir) / "metrics.jsonl");

  TrainSummary summary;
  summary.peak_tflops = peak_tflops;
  summary.planned_bytes = model.parameter_memory().total_bytes() + adamw.state_bytes() +
                          model.activation_memory().total_bytes() + batch_plan.total_bytes();
  summary.steps.reserve(std::size_t(tcfg.steps));
  {
    std::ostringstream os;
    os << "model '" << mcfg.name << "': " << model.table().numel() << " parameters ("
       << model.table().matmul_numel() << " in matmuls), " << mcfg.num_layers << " layers, d_model "
       << mcfg.d_model << ", heads " << mcfg.num_heads << "/" << mcfg.kv_heads() << ", ffn "
       << mcfg.ffn() << ", vocab " << mcfg.vocab_size << '\n';
    os << "data: " << source->description() << "; " << source->num_train_windows() << " windows of "
       << T + 1 << " tokens, prefetch " << job.data.prefetch << " micro-batches\n";
    const std::string plan = source->epoch_plan(std::uint64_t(tcfg.steps) * std::uint64_t(global));
    if (!plan.empty()) os << plan << '\n';
    os << "batch: " << global << " sequences x " << T << " tokens = " << std::int64_t(global) * T
       << " tokens/step (micro-batch " << micro << ", " << accum << " accumulation steps)\n";
    model.parameter_memory().print(os);
    adamw.memory().print(os);
    model.activation_memory().print(os, 8);
    os << "planned total: " << format_bytes(double(summary.planned_bytes)) << "; threads " << threads
       << "; peak " << peak_tflops * 1e3 << " GFLOP/s (" << peak_source << ")";
    log_info(os.str());
  }

  const double tokens_per_step = double(global) * T;
  const float grad_scale = float(1.0 / tokens_per_step);
  const double flops_per_token = model.model_flops_per_token();
  for (long step = 1; step <= tcfg.steps; ++step) {
    const Timer timer;
    model.zero_grads();
    model::LossSum loss;
    for (int m = 0; m < accum; ++m) {
      const data::AsyncLoader::Batch batch = loader.next();
      const model::LossSum l = model.forward_backward(batch.inputs, batch.targets, grad_scale);
      loss.sum += l.sum;
      loss.count += l.count;
    }
    const double grad_norm =
        std::sqrt(kernels::cpu::sum_squares(model.grads().data(), std::int64_t(model.grads().size())));
    if (!std::isfinite(loss.mean()) || !std::isfinite(grad_norm))
      throw make_error("training diverged at step ", step, ": loss ", loss.mean(), ", gradient norm ",
                       grad_norm, " (lower optim.lr or check the data)");
    const double lr = optim::learning_rate(job.optim, step, tcfg.steps);
    adamw.step(model.params().data(), model.grads().data(), lr,
               optim::clip_factor(grad_norm, job.optim.grad_clip));

    StepMetrics s;
    s.step = step;
    s.loss = loss.mean();
    s.lr = lr;
    s.grad_norm = grad_norm;
    s.step_ms = timer.ms();
    s.tokens_per_s = tokens_per_step / (s.step_ms * 1e-3);
    s.tflops = s.tokens_per_s * flops_per_token / 1e12;
    s.mfu = peak_tflops > 0 ? s.tflops / peak_tflops : 0.0;
    s.mem_bytes = peak_rss_bytes();
    s.data_wait_ms = loader.take_wait_ms();
    metrics.write(s);
    summary.steps.push_back(s);
    if (step == 1 || step % tcfg.log_interval == 0 || step == tcfg.steps) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "step %5ld/%d | loss %.4f | lr %.3e | grad_norm %.3f | %.0f tok/s | %.1f ms | "
                    "%.3f TFLOP/s | MFU %.1f%% | mem %.0f MiB | data wait %.1f ms",
                    step, tcfg.steps, s.loss, lr, grad_norm, s.tokens_per_s, s.step_ms, s.tflops,
                    100.0 * s.mfu, double(s.mem_bytes) / 1048576.0, s.data_wait_ms);
      log_line(LogLevel::info, line);
    }
  }
  loader.stop();  // the source is ours again
  // Held-out loss: up to 64 micro-batches of the validation windows, forward only.
  if (const std::int64_t nv = std::min<std::int64_t>(source->num_valid_windows(), 64LL * micro); nv >= micro) {
    std::vector<std::int32_t> window(std::size_t(T) + 1);
    model::LossSum vl;
    for (std::int64_t first = 0; first + micro <= nv; first += micro) {
      for (int b = 0; b < micro; ++b) {
        source->valid_window(first + b, window.data());
        std::copy_n(window.data(), T, inputs + std::size_t(b) * T);
        std::copy_n(window.data() + 1, T, targets + std::size_t(b) * T);
      }
      const model::LossSum l = model.forward(inputs, targets);
      vl.sum += l.sum;
      vl.count += l.count;
    }
    summary.valid_loss = vl.mean();
    log_info("validation: loss ", vl.mean(), " over ", nv / micro * micro, " held-out windows");
  }
  return summary;
}

}  // namespace strata::train
