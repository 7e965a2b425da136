#include "strata/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <type_traits>

#include "strata/ckpt/engine_checkpoint.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/core/log.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/loader.hpp"
#include "strata/kernels/cpu/elementwise.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/optim/optimizer.hpp"
#include "strata/parallel/gpu_engine.hpp"
#include "strata/parallel/pipeline.hpp"
#include "strata/train/objectives.hpp"
#include "strata/train/peak.hpp"
#include "strata/train/signals.hpp"

namespace strata::train {

namespace {

// Appends one JSON object per step to a file, formatted into a fixed buffer: no allocation
// in the step loop.
class MetricsFile {
 public:
  // A resumed run keeps the lines up to its checkpoint's step and appends after them.
  MetricsFile(const std::filesystem::path& path, long resumed_step) {
    if (resumed_step > 0) keep_until(path, resumed_step);
    file_ = std::fopen(path.c_str(), resumed_step > 0 ? "a" : "w");
    if (!file_) throw make_error("cannot create metrics file '", path.string(), "'");
  }
  ~MetricsFile() { std::fclose(file_); }
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  static void keep_until(const std::filesystem::path& path, long step) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      long s = 0;
      if (std::sscanf(line.c_str(), "{\"step\": %ld", &s) == 1 && s > step) continue;
      kept += line + '\n';
    }
    in.close();
    std::ofstream(path, std::ios::trunc) << kept;
  }
  void write(const StepMetrics& m) {
    std::fprintf(file_,
                 "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, \"seq_len\": %d, "
                 "\"tokens\": %lld, \"loss_tokens\": %lld, "
                 "\"tokens_per_s\": %.1f, \"step_ms\": %.3f, \"tflops\": %.6f, \"mfu\": %.5f, "
                 "\"mem_bytes\": %zu, \"compute_ms\": %.3f, \"bubble_fraction\": %.4f, \"pipeline_wait_ms\": %.3f, "
                 "\"dp_wait_ms\": %.3f, \"optimizer_state_bytes\": %zu, \"data_wait_ms\": %.3f}\n",
                 m.step, m.loss, m.lr, m.grad_norm, m.seq_len, static_cast<long long>(m.tokens),
                 static_cast<long long>(m.loss_tokens), m.tokens_per_s, m.step_ms, m.tflops, m.mfu,
                 m.mem_bytes, m.compute_ms, m.bubble_fraction, m.pipeline_wait_ms, m.dp_wait_ms,
                 m.optimizer_state_bytes, m.data_wait_ms);
    std::fflush(file_);
  }
  // A validation result: its own line, {"step": S, "valid_loss": ..., "valid_ppl": ...}.
  void write(const EvalMetrics& e) {
    std::fprintf(file_, "{\"step\": %ld, \"valid_loss\": %.10g, \"valid_ppl\": %.10g, \"valid_tokens\": %lld}\n",
                 e.step, e.loss, e.perplexity, static_cast<long long>(e.tokens));
    std::fflush(file_);
  }

 private:
  std::FILE* file_ = nullptr;
};

struct BatchShape {
  int micro, dp, microbatches, global;
};

BatchShape resolve_batch(const config::ParallelConfig& p, int dp) {
  BatchShape b{p.micro_batch_size, dp, 1, 0};
  if (p.num_microbatches > 0) {
    b.microbatches = p.num_microbatches;
    b.global = b.micro * dp * b.microbatches;
    if (p.global_batch_size > 0 && p.global_batch_size != b.global)
      throw make_error("parallel.global_batch_size (", p.global_batch_size, ") != micro_batch_size x dp x ",
                       "num_microbatches (", b.micro, " x ", dp, " x ", b.microbatches, " = ", b.global, ")");
  } else if (p.global_batch_size > 0) {
    if (p.global_batch_size % (b.micro * dp) != 0)
      throw make_error("parallel.global_batch_size (", p.global_batch_size,
                       ") must be a multiple of micro_batch_size x dp (", b.micro, " x ", dp, " = ",
                       b.micro * dp, ")");
    b.global = p.global_batch_size;
    b.microbatches = b.global / (b.micro * dp);
  } else {
    b.global = b.micro * dp;
  }
  return b;
}

// Test hook: STRATA_INJECT_FAILURE="rank=R,step=S" makes global rank R throw at step S, to
// test that one failing rank ends the whole job instead of hanging it.
void maybe_inject_failure(int global_rank, long step) {
  const char* spec = std::getenv("STRATA_INJECT_FAILURE");
  if (!spec) return;
  int rank = -1;
  long at = -1;
  if (std::sscanf(spec, "rank=%d,step=%ld", &rank, &at) == 2 && rank == global_rank && at == step)
    throw make_error("injected failure at step ", step, " (STRATA_INJECT_FAILURE=", spec, ")");
}

// The checkpoint train.resume asks for: "" (start fresh), the latest in the checkpoint
// directory (auto; "" when there is none yet), or the given file or directory. Every rank
// resolves it the same way on the shared file system.
std::string resume_target(const std::string& resume, const std::string& ckpt_dir) {
  if (resume == "none") return "";
  if (resume == "auto") return ckpt::find_latest(ckpt_dir);
  try {
    return ckpt::resolve(resume);
  } catch (const std::exception& e) {
    throw make_error("train.resume: ", e.what(), " (use none, auto, or the path of a checkpoint)");
  }
}

// The start-up lines about the objective, the validation set and the sequence-length warm-up.
std::string describe_objective(const config::JobConfig& job, const data::Masker* masker,
                               const data::SampleSource::MaskToken& mask, const ValidationSet& valid) {
  const config::TrainConfig& t = job.train;
  std::ostringstream os;
  os << "objective: " << config::to_string(t.objective);
  if (masker) {
    const data::MaskingOptions& o = masker->options();
    os << " (" << 100 * o.probability << "% of positions chosen; of those " << 100 * o.mask_fraction
       << "% [MASK], " << 100 * o.random_fraction << "% random token, "
       << 100 * (1 - o.mask_fraction - o.random_fraction) << "% unchanged; [MASK] = " << mask.mask_id << ": "
       << mask.origin << ")";
  }
  os << "\nvalidation: ";
  if (valid.windows() == 0) {
    os << "none";
  } else {
    os << valid.windows() << " held-out windows, ";
    if (job.eval.interval > 0) os << "every " << job.eval.interval << " steps and ";
    os << "at the end";
  }
  if (t.seq_len_warmup > 0)
    os << "\nsequence-length warm-up: " << warmup_start_len(t) << " -> " << t.seq_len << " tokens over the first "
       << t.seq_len_warmup << " training tokens";
  return os.str();
}

// What the GPU path (hardware.device: cuda, parallel::GpuEngine) does not run yet, refused
// before anything is built; the engine itself refuses pp > 1, head sizes its attention
// kernel lacks, and (sequence parallelism) micro-batches of B x T not divisible by tp.
void check_gpu_job(const config::JobConfig& job) {
  const std::string at = job.source.empty() ? "" : job.source + ": ";
  if (job.train.seq_len_warmup > 0)
    throw make_error(at, "train.seq_len_warmup is not supported with hardware.device: cuda yet (set it to 0)");
}

// The training loop over either engine: PipelineEngine (CPU, every layout) or GpuEngine
// (CUDA, pp = 1). Only the engine-specific pieces branch on `gpu`.
template <class Engine>
TrainSummary train_loop(const config::JobConfig& job, comm::RankGrid& grid, Engine& engine) {
  constexpr bool gpu = std::is_same_v<Engine, parallel::GpuEngine>;
  const config::ModelConfig& mcfg = job.model;
  const config::TrainConfig& tcfg = job.train;
  const comm::GridShape& shape = grid.shape();
  const bool lead = grid.global_rank() == 0;
  const BatchShape batch = resolve_batch(job.parallel, shape.dp);
  const int T = tcfg.seq_len;

  // Threads: this rank's share of the node's cores, for BLAS.
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = job.hardware.threads > 0 ? job.hardware.threads : std::max(1, cores / grid.local_size());
  kernels::cpu::set_blas_threads(threads);

  // Components, each from its own config.
  // Data: the source yields global sample s; the ranks that hold the first or the last
  // virtual stage (tokens, targets) read this DP rank's micro-batches ahead on a loader
  // thread (DP slice of each global batch, DESIGN.md invariant 3).
  const bool masked_lm = tcfg.objective == config::ObjectiveKind::masked_lm;
  const std::unique_ptr<data::SampleSource> source =
      data::make_sample_source(job.data, mcfg, T, tcfg.seed, masked_lm);
  engine.init_parameters(tcfg.seed);

  // Resume: parameters, Adam moments and step from a checkpoint of any layout.
  namespace fs = std::filesystem;
  const std::string ckpt_dir = job.ckpt.dir.empty() ? (fs::path(tcfg.out_dir) / "checkpoints").string() : job.ckpt.dir;
  ckpt::EngineCheckpointer checkpointer(job, engine, grid);
  const std::string resume_file = resume_target(tcfg.resume, ckpt_dir);
  ckpt::TrainState resumed;
  if (!resume_file.empty()) {
    resumed = checkpointer.load(resume_file, source->tokenizer_hash());
    if (resumed.consumed_samples % std::uint64_t(batch.global) != 0)
      throw make_error("checkpoint '", resume_file, "' stopped after ", resumed.consumed_samples,
                       " samples, not a whole number of this run's global batches of ", batch.global,
                       " (choose parallel.global_batch_size dividing it)");
    if (lead) {
      log_info("resumed from ", resume_file, ": step ", resumed.step, ", ", resumed.consumed_samples, " samples, ",
               resumed.tokens_seen, " tokens seen; written with ", resumed.layout, ", loaded into tp", shape.tp,
               "-pp", shape.pp, "-dp", shape.dp, " zero", job.parallel.zero_stage);
      if (resumed.seed != tcfg.seed)
        log_warn("train.seed is ", tcfg.seed, " but the checkpoint was written with seed ", resumed.seed,
                 ": the data order after the resume differs from the original run's");
    }
  }
  const long first_step = resumed.step + 1;

  const bool reads_data = grid.is_first_stage() || grid.is_last_stage();
  // Masked LM: training samples and validation windows masked by their index (null: causal LM).
  const std::unique_ptr<data::Masker> masker = make_masker(tcfg, *source, data::MaskStream::train);
  const std::unique_ptr<data::Masker> valid_masker = make_masker(tcfg, *source, data::MaskStream::valid);
  // The validation set is read before the loader thread starts using the source.
  const BatchLayout eval_layout{batch.micro, batch.microbatches, shape.dp, grid.coord().dp_rank};
  const ValidationSet valid_set(*source, valid_masker.get(), job.eval.windows, eval_layout, T, reads_data);
  const std::uint64_t first_batch = resumed.consumed_samples / std::uint64_t(batch.global);
  std::unique_ptr<data::AsyncLoader> loader;
  if (reads_data) {
    data::LoaderOptions opt;
    opt.micro_batch_size = batch.micro;
    opt.seq_len = T;
    opt.global_batch_size = batch.global;
    opt.dp_size = shape.dp;
    opt.dp_rank = grid.coord().dp_rank;
    opt.prefetch = job.data.prefetch;
    opt.first_batch = first_batch;
    opt.masker = masker.get();
    loader = std::make_unique<data::AsyncLoader>(*source, opt);
  }
  // This step's micro-batches, taken from the loader at the start of the step.
  const std::int64_t mb_elems = std::int64_t(batch.micro) * T;
  MemoryPlan step_batch("step batch");
  const auto i_tokens = step_batch.add("tokens", {batch.microbatches, mb_elems}, DType::i32, "step");
  const auto i_targets = step_batch.add("targets", {batch.microbatches, mb_elems}, DType::i32, "step");
  step_batch.allocate();
  std::int32_t* step_tokens = step_batch.data<std::int32_t>(i_tokens);
  std::int32_t* step_targets = step_batch.data<std::int32_t>(i_targets);

  // Peak FLOP/s per rank for MFU (train/peak.hpp: configured, cluster file, GPU table, or the
  // host's fp32 peak measured once per host and shared by its ranks).
  std::string device;  // the GPU's name; "" on CPU
  if constexpr (gpu) device = engine.device_name();
  PeakFlops peak = resolve_peak_flops(job.hardware, grid, device);
  const double peak_tflops = peak.tflops_per_rank();
  const std::string& peak_source = peak.source();

  fs::create_directories(tcfg.out_dir);
  std::unique_ptr<MetricsFile> metrics;
  if (lead) {
    std::ofstream(fs::path(tcfg.out_dir) / "config.yaml") << config::to_yaml(job);
    metrics = std::make_unique<MetricsFile>(fs::path(tcfg.out_dir) / "metrics.jsonl", resumed.step);
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> rank_log(nullptr, std::fclose);
  if (tcfg.rank_logs) {
    const auto path = fs::path(tcfg.out_dir) / ("rank" + std::to_string(grid.global_rank()) + ".log");
    rank_log.reset(std::fopen(path.c_str(), "w"));
    if (!rank_log) throw make_error("cannot create rank log '", path.string(), "'");
    std::string schedule = "none (pp 1, GPU)";
    if constexpr (!gpu) schedule = parallel::to_string(engine.schedule());
    std::fprintf(rank_log.get(), "%s; schedule %s\n", grid.describe().c_str(), schedule.c_str());
  }

  TrainSummary summary;
  summary.peak_tflops = peak_tflops;
  summary.planned_bytes = engine.parameter_bytes() + engine.optimizer_bytes() + engine.activation_bytes();
  summary.steps.reserve(std::size_t(tcfg.steps));
  summary.evals.reserve(std::size_t(job.eval.interval > 0 ? tcfg.steps / job.eval.interval + 1 : 1));
  if (lead) {
    const model::ParameterTable whole = model::make_parameter_table(mcfg);
    std::ostringstream os;
    os << "model '" << mcfg.name << "': " << whole.numel() << " parameters (" << whole.matmul_numel()
       << " in matmuls), " << mcfg.num_layers << " layers, d_model " << mcfg.d_model << ", heads "
       << mcfg.num_heads << "/" << mcfg.kv_heads() << ", ffn " << mcfg.ffn() << ", vocab " << mcfg.vocab_size << '\n';
    if (const int vp = model::padded_vocab(mcfg.vocab_size, shape.tp, gpu ? 64 : 1); vp != mcfg.vocab_size)
      os << "vocabulary padded from " << mcfg.vocab_size << " to " << vp << " so each of the " << shape.tp
         << " tensor-parallel ranks holds " << vp / shape.tp << " rows (the padding rows are never targets)\n";
    os << "layout: tp " << shape.tp << " x pp " << shape.pp << " x dp " << shape.dp << " = " << shape.size()
       << " ranks; schedule " << config::to_string(job.parallel.schedule) << " (virtual stages "
       << job.parallel.virtual_stages << ", bubble " << parallel::bubble_fraction(shape.pp, batch.microbatches,
                                                                                  job.parallel.virtual_stages)
       << "); sequence parallel " << (job.parallel.sequence_parallel ? "on" : "off") << "; ZeRO stage "
       << job.parallel.zero_stage << "; recompute " << config::to_string(mcfg.recompute) << '\n';
    os << "data: " << source->description() << "; " << source->num_train_windows() << " windows of " << T + 1
       << " tokens, prefetch " << job.data.prefetch << " micro-batches\n";
    const std::string plan = source->epoch_plan(std::uint64_t(tcfg.steps) * std::uint64_t(batch.global));
    if (!plan.empty()) os << plan << '\n';
    os << "batch: " << batch.global << " sequences x " << T << " tokens = " << std::int64_t(batch.global) * T
       << " tokens/step (micro-batch " << batch.micro << ", " << batch.microbatches
       << " micro-batches per DP rank)\n";
    os << describe_objective(job, masker.get(), source->mask_token(), valid_set) << '\n';
    if constexpr (gpu) {
      os << engine.description() << '\n';
    } else {
      for (int c = 0; c < engine.num_chunks(); ++c) {
        engine.chunk(c).parameter_memory().print(os);
        engine.chunk(c).activation_memory().print(os, 8);
      }
    }
    os << "rank 0 planned total: " << format_bytes(double(summary.planned_bytes)) << " (optimizer state "
       << format_bytes(double(engine.optimizer_bytes())) << "); threads per rank " << threads << "; peak "
       << peak_tflops * 1e3 << " GFLOP/s per rank (" << peak_source << ")";
    log_info(os.str());
  }

  const double bubble = parallel::bubble_fraction(shape.pp, batch.microbatches, job.parallel.virtual_stages);
  int t = T;                           // this step's sequence length (train.seq_len_warmup)
  std::int64_t t_mb_elems = mb_elems;  // this step's micro-batch: [micro, t]
  const parallel::PipelineEngine::FillBatch fill = [&](int mb, std::int32_t* tokens, std::int32_t* targets) {
    std::copy_n(step_tokens + mb * t_mb_elems, t_mb_elems, tokens);
    std::copy_n(step_targets + mb * t_mb_elems, t_mb_elems, targets);
  };
  // Checkpoints: saved by every rank together (each writes its own hyperslabs).
  summary.resumed_from = resume_file;
  summary.first_step = first_step;
  summary.last_step = resumed.step;
  std::uint64_t tokens_seen = resumed.tokens_seen;
  double last_lr = resumed.lr;
  auto save_checkpoint = [&](long step) {
    ckpt::TrainState st;
    st.step = step;
    st.consumed_samples = resumed.consumed_samples + std::uint64_t(step - resumed.step) * std::uint64_t(batch.global);
    st.tokens_seen = tokens_seen;
    st.seed = tcfg.seed;
    st.lr = last_lr;
    st.consumed_per_dataset = source->consumed_per_dataset(st.consumed_samples);
    st.tokenizer_hash = source->tokenizer_hash();
    const ckpt::SaveResult r = checkpointer.save(ckpt_dir, st, job.ckpt.keep);
    summary.last_checkpoint = r.file;
    if (lead)
      log_info("checkpoint: step ", step, " saved to ", r.file, " (", format_bytes(double(r.bytes)), " in ",
               r.seconds, " s, ", r.gb_per_s(), " GB/s)");
  };
  // Validation (collective): the loss on the fixed held-out set, a metrics line, a log line.
  auto run_eval = [&](long step) {
    if (valid_set.windows() == 0) return;
    const EvalResult e = evaluate(engine, grid, valid_set);
    const EvalMetrics m{step, e.loss, e.perplexity(), e.tokens};
    summary.evals.push_back(m);
    summary.valid_loss = e.loss;
    if (lead) {
      metrics->write(m);
      char line[200];
      std::snprintf(line, sizeof line,
                    "validation at step %ld: loss %.4f | perplexity %.3f | %lld held-out windows, %lld target tokens",
                    step, e.loss, e.perplexity(), static_cast<long long>(valid_set.windows()),
                    static_cast<long long>(e.tokens));
      log_line(LogLevel::info, line);
    }
  };
  auto log_step = [&](const StepMetrics& s) {
    metrics->write(s);
    if (s.step == first_step || s.step % tcfg.log_interval == 0 || s.step == tcfg.steps) {
      char line[340];
      std::snprintf(line, sizeof line,
                    "step %5ld/%d | loss %.4f | lr %.3e | grad_norm %.3f | seq %d | %.0f tok/s | %.1f ms | "
                    "%.3f TFLOP/s/rank | MFU %.1f%% | bubble %.2f | comm wait %.1f ms | data wait %.1f ms | mem %.0f MiB",
                    s.step, tcfg.steps, s.loss, s.lr, s.grad_norm, s.seq_len, s.tokens_per_s, s.step_ms, s.tflops,
                    100.0 * s.mfu, bubble, s.pipeline_wait_ms + s.dp_wait_ms, s.data_wait_ms,
                    double(s.mem_bytes) / 1048576.0);
      log_line(LogLevel::info, line);
    }
  };
  const StopSignals signals;
  if (first_step > tcfg.steps && lead)
    log_info("nothing to train: the checkpoint is at step ", resumed.step, " and train.steps is ", tcfg.steps);
  for (long step = first_step; step <= tcfg.steps; ++step) {
    const Timer timer;
    maybe_inject_failure(grid.global_rank(), step);
    // Sequence-length warm-up: the length follows the tokens trained on (a resumed run has
    // them from its checkpoint).
    if (const int next_t = warmup_seq_len(tcfg, tokens_seen); next_t != t) {
      t = next_t;
      t_mb_elems = std::int64_t(batch.micro) * t;
      if constexpr (!gpu) engine.set_seq_len(t);
    }
    // Target tokens of the global batch: known before the step on every rank (masked LM: a
    // pure function of the sample indices), so the gradient is the mean over exactly them.
    const std::uint64_t global_batch_index = first_batch + std::uint64_t(step - first_step);
    const std::int64_t step_loss_tokens = loss_tokens(masker.get(), global_batch_index, batch.global, t);
    const float grad_scale = step_loss_tokens > 0 ? float(1.0 / double(step_loss_tokens)) : 0.0f;
    double data_wait_ms = 0;
    if (loader) {
      for (int mb = 0; mb < batch.microbatches; ++mb) {
        const data::AsyncLoader::Batch b = loader->next();
        // Row r of the loader's [micro, T] batch -> its first t tokens (the first t + 1 of the window).
        for (int r = 0; r < batch.micro; ++r) {
          std::copy_n(b.inputs + std::int64_t(r) * T, t, step_tokens + mb * t_mb_elems + std::int64_t(r) * t);
          std::copy_n(b.targets + std::int64_t(r) * T, t, step_targets + mb * t_mb_elems + std::int64_t(r) * t);
        }
      }
      data_wait_ms = loader->take_wait_ms();
    }
    const parallel::StepStats stats = engine.run(fill, grad_scale);
    // The loss lives on the last stage: sum over PP (others add 0) and DP.
    double loss[2] = {stats.loss.sum, double(stats.loss.count)};
    grid.pp_group().all_reduce(loss, 2);
    grid.dp_group().all_reduce(loss, 2);
    // The gradient was scaled by 1 / step_loss_tokens, counted before the step; the loss
    // saw the loader's targets. They must agree, or the gradient is not the mean.
    STRATA_CHECK(std::int64_t(loss[1]) == step_loss_tokens, "step ", step, ": the loss covered ",
                 std::int64_t(loss[1]), " target tokens but the gradient scale assumed ", step_loss_tokens);
    const double mean_loss = loss[1] > 0 ? loss[0] / loss[1] : 0.0;
    const double grad_norm = engine.grad_norm();
    if (!std::isfinite(mean_loss) || !std::isfinite(grad_norm))
      throw make_error("training diverged at step ", step, ": loss ", mean_loss, ", gradient norm ", grad_norm,
                       " (lower optim.lr or check the data)");
    const double lr = optim::learning_rate(job.optim, step, tcfg.steps);
    const double gather_wait = engine.optimizer_step(lr, optim::clip_factor(grad_norm, job.optim.grad_clip));

    StepMetrics s;
    s.step = step;
    s.loss = mean_loss;
    s.lr = lr;
    s.grad_norm = grad_norm;
    s.seq_len = t;
    s.tokens = std::int64_t(batch.global) * t;
    s.loss_tokens = step_loss_tokens;
    s.step_ms = timer.ms();
    // Throughput and MFU count what the step processed: G x t tokens at the FLOPs per token
    // of length t (masked LM processes every position; only the loss is sparse).
    s.tokens_per_s = double(s.tokens) / (s.step_ms * 1e-3);
    s.tflops = s.tokens_per_s * model::Transformer<float>::model_flops_per_token(mcfg, t) / shape.size() / 1e12;
    s.mfu = peak.mfu(s.tflops);
    s.mem_bytes = peak_rss_bytes();
    s.compute_ms = stats.compute_s * 1e3;
    s.bubble_fraction = bubble;
    s.pipeline_wait_ms = stats.pipeline_wait_s * 1e3;
    s.dp_wait_ms = (stats.dp_wait_s + gather_wait) * 1e3;
    s.optimizer_state_bytes = engine.optimizer_bytes();
    s.data_wait_ms = data_wait_ms;
    summary.steps.push_back(s);
    if (rank_log)
      std::fprintf(rank_log.get(), "step %ld loss %.6f compute %.1f ms pipeline wait %.1f ms dp wait %.1f ms\n",
                   step, s.loss, stats.compute_s * 1e3, s.pipeline_wait_ms, s.dp_wait_ms);
    tokens_seen += std::uint64_t(s.tokens);
    last_lr = lr;
    summary.last_step = step;
    if (lead) log_step(s);
    if (job.eval.interval > 0 && step % job.eval.interval == 0) run_eval(step);
    // A stop signal on any rank stops every rank after this step, with a checkpoint.
    double stop = StopSignals::received();
    grid.world_group().all_reduce(&stop, 1, DType::f64, comm::ReduceOp::max);
    const bool due = job.ckpt.interval > 0 && step % job.ckpt.interval == 0;
    if (due || stop > 0 || (step == tcfg.steps && job.ckpt.save_at_end)) save_checkpoint(step);
    if (stop > 0) {
      summary.stop_signal = int(stop);
      if (lead)
        log_warn("stopping after step ", step, " on ", signal_name(int(stop)), "; checkpoint ",
                 summary.last_checkpoint);
      break;
    }
  }
  if (loader) loader->stop();
  // Validation at the end (unless the last step just ran it or a stop signal cut the run
  // short), for every layout.
  if (summary.stop_signal == 0 && summary.last_step >= first_step &&
      (summary.evals.empty() || summary.evals.back().step != summary.last_step))
    run_eval(summary.last_step);
  if (valid_set.windows() == 0 && job.eval.windows > 0 && lead)
    log_info("validation: skipped, the data source has no held-out windows (data.valid_fraction for hdf5)");
  if constexpr (gpu) {
    // A host copy of the master weights for the tests that compare layouts; a production
    // model's copy (tens of GB per rank, on every rank of a node) is not made.
    if (engine.table().numel() <= (std::int64_t(1) << 28)) {
      summary.final_param_info = engine.table().entries();
      summary.final_params.resize(std::size_t(engine.table().numel()));
      engine.download_parameters(summary.final_params.data());
    }
  } else {
    for (int c = 0; c < engine.num_chunks(); ++c) {
      const std::int64_t base = std::int64_t(summary.final_params.size());
      for (model::ParamInfo info : engine.chunk(c).table().entries()) {
        info.offset += base;
        summary.final_param_info.push_back(std::move(info));
      }
      auto p = engine.chunk(c).params();
      summary.final_params.insert(summary.final_params.end(), p.begin(), p.end());
    }
  }
  return summary;
}

TrainSummary train_on_grid(const config::JobConfig& job, comm::RankGrid& grid) {
  const BatchShape batch = resolve_batch(job.parallel, grid.shape().dp);
  if (job.hardware.device == config::DeviceKind::cuda) {
    check_gpu_job(job);
    parallel::GpuEngine engine(job.model, job.parallel, job.optim, job.train.seq_len, batch.microbatches, grid);
    return train_loop(job, grid, engine);
  }
  parallel::PipelineEngine engine(job.model, job.parallel, job.optim, job.train.seq_len, batch.microbatches, grid);
  return train_loop(job, grid, engine);
}

}  // namespace

TrainSummary run_training(const config::JobConfig& job, MPI_Comm world) {
  const config::ParallelConfig& p = job.parallel;
  comm::RankGrid grid(world, p.tp, p.pp, p.dp);
  try {
    // The derived DP size written down: config.yaml and checkpoints record the layout that ran.
    config::JobConfig resolved = job;
    resolved.parallel.dp = grid.shape().dp;
    return train_on_grid(resolved, grid);
  } catch (const std::exception& e) {
    // Name this rank's grid coordinates; main() reports and aborts the job.
    throw Error("[" + grid.coordinates() + "] " + e.what());
  }
}

}  // namespace strata::train
