#include "strata/train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "strata/ckpt/engine_checkpoint.hpp"
#include "strata/ckpt/verify.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/batch.hpp"
#include "strata/config/load.hpp"
#include "strata/core/log.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/loader.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/optim/optimizer.hpp"
#include "strata/parallel/engine.hpp"
#include "strata/train/objectives.hpp"
#include "strata/train/peak.hpp"
#include "strata/train/signals.hpp"
#include "strata/train/stragglers.hpp"

namespace strata::train {

namespace fs = std::filesystem;

namespace {

// Appends one JSON object per step to a file, formatted into a fixed buffer: no allocation
// in the step loop.
class MetricsFile {
 public:
  // A resumed run keeps the lines up to its checkpoint's step and appends after them.
  MetricsFile(const fs::path& path, long resumed_step) : path_(path) {
    if (resumed_step > 0) keep_until(path, resumed_step);
    file_ = std::fopen(path.c_str(), resumed_step > 0 ? "a" : "w");
    if (!file_) throw make_error("cannot create metrics file '", path.string(), "'");
  }
  ~MetricsFile() { std::fclose(file_); }
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  static void keep_until(const fs::path& path, long step) {
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
  // A rollback: the lines after `step` go (their trajectory no longer exists), writing continues.
  void rewind_to(long step) {
    std::fclose(file_);
    keep_until(path_, step);
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) throw make_error("cannot reopen metrics file '", path_.string(), "'");
  }
  void write(const StepMetrics& m) {
    // JSON has no NaN: a bad step's non-finite loss or norm is null.
    char loss[32] = "null", norm[32] = "null";
    if (std::isfinite(m.loss)) std::snprintf(loss, sizeof loss, "%.6f", m.loss);
    if (std::isfinite(m.grad_norm)) std::snprintf(norm, sizeof norm, "%.6f", m.grad_norm);
    std::fprintf(
        file_,
        "{\"step\": %ld, \"loss\": %s, \"lr\": %.6e, \"grad_norm\": %s, \"seq_len\": %d, "
        "\"tokens\": %lld, \"loss_tokens\": %lld, "
        "\"tokens_per_s\": %.1f, \"step_ms\": %.3f, \"tflops\": %.6f, \"mfu\": %.5f, "
        "\"mem_bytes\": %zu, \"compute_ms\": %.3f, \"bubble_fraction\": %.4f, \"pipeline_wait_ms\": %.3f, "
        "\"dp_wait_ms\": %.3f, \"optimizer_state_bytes\": %zu, \"data_wait_ms\": %.3f, \"samples\": %llu, "
        "\"skipped\": %d, \"bad\": \"%s\", \"save_wait_ms\": %.3f, \"ckpt_ms\": %.3f, \"saving\": %d, "
        "\"cpu_ms\": %.3f}\n",
        m.step, loss, m.lr, norm, m.seq_len, static_cast<long long>(m.tokens),
        static_cast<long long>(m.loss_tokens), m.tokens_per_s, m.step_ms, m.tflops, m.mfu, m.mem_bytes,
        m.compute_ms, m.bubble_fraction, m.pipeline_wait_ms, m.dp_wait_ms, m.optimizer_state_bytes,
        m.data_wait_ms, static_cast<unsigned long long>(m.samples), m.skipped ? 1 : 0, to_string(m.bad),
        m.save_wait_ms, m.ckpt_ms, m.saving ? 1 : 0, m.cpu_ms);
    std::fflush(file_);
  }
  // Any other record (the straggler report), already JSON.
  void write_line(const std::string& json) {
    std::fprintf(file_, "%s\n", json.c_str());
    std::fflush(file_);
  }
  // A validation result: its own line, {"step": S, "valid_loss": ..., "valid_ppl": ...}.
  void write(const EvalMetrics& e) {
    std::fprintf(file_,
                 "{\"step\": %ld, \"valid_loss\": %.10g, \"valid_ppl\": %.10g, \"valid_tokens\": %lld}\n",
                 e.step, e.loss, e.perplexity, static_cast<long long>(e.tokens));
    std::fflush(file_);
  }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
};

// The checkpoint train.resume asks for: "" (start fresh), the newest intact one in the
// checkpoint directory (auto: verified, collectively; corrupt or truncated newer ones are
// skipped with a report; "" when there is none yet), or the given file or directory. Every
// rank resolves it the same way on the shared file system.
std::string resume_target(const std::string& resume, const std::string& ckpt_dir, comm::RankGrid& grid) {
  if (resume == "none") return "";
  if (resume == "auto") return ckpt::find_latest_intact(ckpt_dir, grid.world_group());
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
    os << "\nsequence-length warm-up: " << warmup_start_len(t) << " -> " << t.seq_len
       << " tokens over the first " << t.seq_len_warmup << " training tokens";
  return os.str();
}

// One training run on one rank: the components built in a fixed order from their own configs
// (data, engine, checkpoints, validation, metrics), then steps that allocate nothing.
class Trainer {
 public:
  Trainer(const config::JobConfig& job, comm::RankGrid& grid, const FaultHooks* faults);
  TrainSummary run();

 private:
  void load_step_batch(int t);
  void start_loader();
  StepMetrics step(long step);
  ckpt::TrainState train_state(long step) const;
  void checkpoint(long step, bool now, StepMetrics& s);
  void report_saves();
  long rollback(long step);
  void log_bad_step(const StepMetrics& s) const;
  void validate(long step);
  void log_start() const;
  void log_step(const StepMetrics& s) const;
  void keep_final_parameters();

  const config::JobConfig& job_;
  comm::RankGrid& grid_;
  const bool lead_;
  const config::BatchShape batch_;
  const int threads_;
  std::unique_ptr<data::SampleSource> source_;
  std::unique_ptr<parallel::Engine> engine_;
  std::string ckpt_dir_;
  std::unique_ptr<ckpt::EngineCheckpointer> checkpointer_;
  ckpt::TrainState resumed_;
  std::unique_ptr<data::Masker> masker_, valid_masker_;
  std::unique_ptr<ValidationSet> valid_set_;
  std::uint64_t next_batch_ = 0;  // the data position: the global batch the next step trains on
  bool reads_data_ = false;
  std::unique_ptr<data::AsyncLoader> loader_;
  MemoryPlan step_batch_{"step batch"};
  std::int32_t *step_tokens_ = nullptr, *step_targets_ = nullptr;
  PeakFlops peak_;  // per rank, for MFU (train/peak.hpp)
  std::unique_ptr<MetricsFile> metrics_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> rank_log_{nullptr, std::fclose};
  StragglerMonitor stragglers_{grid_};
  TrainSummary summary_;
  // The step in flight.
  int t_ = 0;                    // this step's sequence length (train.seq_len_warmup)
  std::int64_t t_mb_elems_ = 0;  // this step's micro-batch: [micro, t]
  double bubble_ = 0;
  std::uint64_t tokens_seen_ = 0;
  double last_lr_ = 0;
  std::size_t snapshot_bytes_ = 0;  // host memory of checkpoint saves (staging, snapshot)
  parallel::Engine::FillBatch fill_;
  StepGuard guard_;
  std::vector<long> bad_run_;  // the steps of the current run of bad steps
  int stop_ = 0;               // the stop signal every rank agreed on in the last step
  const FaultHooks faults_;    // tests only (core/faults.hpp); defaults: none
};

Trainer::Trainer(const config::JobConfig& job, comm::RankGrid& grid, const FaultHooks* faults)
    : job_(job),
      grid_(grid),
      lead_(grid.global_rank() == 0),
      batch_(config::resolve_batch(job.parallel, grid.shape().dp)),
      threads_(job.hardware.threads > 0
                   ? job.hardware.threads
                   : std::max(1, int(std::max(1u, std::thread::hardware_concurrency())) / grid.local_size())),
      guard_(job.guard),
      faults_(faults ? *faults : FaultHooks{}) {
  const config::TrainConfig& tcfg = job.train;
  const int T = tcfg.seq_len;
  // 1. Threads: this rank's share of the node's cores, for BLAS.
  kernels::cpu::set_blas_threads(threads_);
  // 2. Data: the source yields global sample s (DESIGN.md invariant 3).
  const bool masked_lm = tcfg.objective == config::ObjectiveKind::masked_lm;
  source_ = data::make_sample_source(job.data, job.model, T, tcfg.seed, masked_lm);
  // 3. The engine on this rank's device, its parameters drawn layout-independently.
  engine_ = parallel::make_engine(job.hardware.device, job.model, job.parallel, job.optim, T,
                                  batch_.microbatches, grid);
  engine_->init_parameters(tcfg.seed);
  // 4. Resume: parameters, Adam moments and step from a checkpoint of any layout.
  ckpt_dir_ = job.ckpt.dir.empty() ? (fs::path(tcfg.out_dir) / "checkpoints").string() : job.ckpt.dir;
  checkpointer_ = std::make_unique<ckpt::EngineCheckpointer>(job, *engine_, grid, &faults_);
  const std::string resume_file = resume_target(tcfg.resume, ckpt_dir_, grid);
  if (!resume_file.empty()) {
    resumed_ = checkpointer_->load(resume_file, source_->tokenizer_hash());
    if (resumed_.consumed_samples % std::uint64_t(batch_.global) != 0)
      throw make_error("checkpoint '", resume_file, "' stopped after ", resumed_.consumed_samples,
                       " samples, not a whole number of this run's global batches of ", batch_.global,
                       " (choose parallel.global_batch_size dividing it)");
    if (lead_) {
      const comm::GridShape& g = grid.shape();
      log_info("resumed from ", resume_file, ": step ", resumed_.step, ", ", resumed_.consumed_samples,
               " samples, ", resumed_.tokens_seen, " tokens seen; written with ", resumed_.layout,
               ", loaded into tp", g.tp, "-pp", g.pp, "-dp", g.dp, " zero", job.parallel.zero_stage);
      if (resumed_.seed != tcfg.seed)
        log_warn("train.seed is ", tcfg.seed, " but the checkpoint was written with seed ", resumed_.seed,
                 ": the data order after the resume differs from the original run's");
    }
  }
  summary_.resumed_from = resume_file;
  summary_.first_step = resumed_.step + 1;
  summary_.last_step = resumed_.step;
  summary_.async_checkpoints = checkpointer_->async();
  // The host memory saves use, allocated now (the step loop allocates nothing).
  if (job.ckpt.interval > 0 || job.ckpt.save_at_end) snapshot_bytes_ = checkpointer_->prepare_saves();
  tokens_seen_ = resumed_.tokens_seen;
  last_lr_ = resumed_.lr;
  guard_ = StepGuard(job.guard, resumed_.guard);
  // 5. Validation set and the training loader (the set is read before the loader thread
  // starts using the source). Masked LM: samples and windows masked by their index.
  const bool reads_data = grid.is_first_stage() || grid.is_last_stage();
  masker_ = make_masker(tcfg, *source_, data::MaskStream::train);
  valid_masker_ = make_masker(tcfg, *source_, data::MaskStream::valid);
  const BatchLayout eval_layout{batch_.micro, batch_.microbatches, grid.shape().dp, grid.coord().dp_rank};
  valid_set_ = std::make_unique<ValidationSet>(*source_, valid_masker_.get(), job.eval.windows, eval_layout,
                                               T, reads_data);
  next_batch_ = resumed_.consumed_samples / std::uint64_t(batch_.global);
  reads_data_ = reads_data;
  start_loader();
  // This step's micro-batches, taken from the loader at the start of the step.
  const std::int64_t mb_elems = std::int64_t(batch_.micro) * T;
  const auto i_tokens = step_batch_.add("tokens", {batch_.microbatches, mb_elems}, DType::i32, "step");
  const auto i_targets = step_batch_.add("targets", {batch_.microbatches, mb_elems}, DType::i32, "step");
  step_batch_.allocate();
  step_tokens_ = step_batch_.data<std::int32_t>(i_tokens);
  step_targets_ = step_batch_.data<std::int32_t>(i_targets);
  t_ = T;
  t_mb_elems_ = mb_elems;
  fill_ = [this](int mb, std::int32_t* tokens, std::int32_t* targets) {
    std::copy_n(step_tokens_ + mb * t_mb_elems_, t_mb_elems_, tokens);
    std::copy_n(step_targets_ + mb * t_mb_elems_, t_mb_elems_, targets);
  };
  // 6. MFU's peak (configured, the cluster file, the GPU table, or the host's fp32 peak measured
  // once per host and shared by its ranks), the metrics file, the per-rank log.
  peak_ = resolve_peak_flops(job.hardware, grid, engine_->device_name());
  fs::create_directories(tcfg.out_dir);
  if (lead_) {
    std::ofstream(fs::path(tcfg.out_dir) / "config.yaml") << config::to_yaml(job);
    metrics_ = std::make_unique<MetricsFile>(fs::path(tcfg.out_dir) / "metrics.jsonl", resumed_.step);
  }
  if (tcfg.rank_logs) {
    const auto path = fs::path(tcfg.out_dir) / ("rank" + std::to_string(grid.global_rank()) + ".log");
    rank_log_.reset(std::fopen(path.c_str(), "w"));
    if (!rank_log_) throw make_error("cannot create rank log '", path.string(), "'");
    std::fprintf(rank_log_.get(), "%s; schedule %s\n", grid.describe().c_str(),
                 parallel::to_string(engine_->plan().schedule).c_str());
  }
  bubble_ = parallel::bubble_fraction(job.parallel.schedule, grid.shape().pp, batch_.microbatches,
                                      job.parallel.virtual_stages);
  summary_.peak_tflops = peak_.tflops_per_rank();
  summary_.planned_bytes = engine_->parameter_bytes() + engine_->optimizer_bytes() +
                           engine_->activation_bytes() + engine_->plan().host.total_bytes();
  summary_.steps.reserve(std::size_t(tcfg.steps));
  summary_.evals.reserve(std::size_t(job.eval.interval > 0 ? tcfg.steps / job.eval.interval + 1 : 1));
  if (lead_) log_start();
}

void Trainer::log_start() const {
  const config::ModelConfig& m = job_.model;
  const comm::GridShape& g = grid_.shape();
  const int T = job_.train.seq_len;
  const model::ParameterTable whole = model::make_parameter_table(m);
  std::ostringstream os;
  os << "model '" << m.name << "': " << whole.numel() << " parameters (" << whole.matmul_numel()
     << " in matmuls), " << m.num_layers << " layers, d_model " << m.d_model << ", heads " << m.num_heads
     << "/" << m.kv_heads() << ", ffn " << m.ffn() << ", vocab " << m.vocab_size << '\n';
  if (const int vp = model::padded_vocab(m.vocab_size, g.tp, engine_->plan().spec.vocab_multiple);
      vp != m.vocab_size)
    os << "vocabulary padded from " << m.vocab_size << " to " << vp << " so each of the " << g.tp
       << " tensor-parallel ranks holds " << vp / g.tp << " rows (the padding rows are never targets)\n";
  os << "layout: tp " << g.tp << " x pp " << g.pp << " x dp " << g.dp
     << (g.cp > 1 ? " x cp " + std::to_string(g.cp) : std::string()) << " = " << g.size()
     << " ranks; schedule " << config::to_string(job_.parallel.schedule) << " (virtual stages "
     << job_.parallel.virtual_stages << ", bubble " << bubble_ << "); sequence parallel "
     << (job_.parallel.sequence_parallel ? "on" : "off") << "; ZeRO stage " << job_.parallel.zero_stage
     << "; recompute " << config::to_string(m.recompute) << '\n';
  os << "data: " << source_->description() << "; " << source_->num_train_windows() << " windows of " << T + 1
     << " tokens, prefetch " << job_.data.prefetch << " micro-batches\n";
  const std::string epochs =
      source_->epoch_plan(std::uint64_t(job_.train.steps) * std::uint64_t(batch_.global));
  if (!epochs.empty()) os << epochs << '\n';
  os << "batch: " << batch_.global << " sequences x " << T << " tokens = " << std::int64_t(batch_.global) * T
     << " tokens/step (micro-batch " << batch_.micro << ", " << batch_.microbatches
     << " micro-batches per DP rank)\n";
  os << describe_objective(job_, masker_.get(), source_->mask_token(), *valid_set_) << '\n';
  const config::CheckpointConfig& c = job_.ckpt;
  os << "checkpoints: ";
  if (c.interval > 0) os << "every " << c.interval << " steps, ";
  os << (c.save_at_end ? "at the end, " : "") << "on SIGTERM/SIGUSR1; to " << ckpt_dir_ << " (keep "
     << (c.keep > 0 ? std::to_string(c.keep) : std::string("all")) << "); "
     << (checkpointer_->async() ? "periodic ones written in the background"
                                : "written synchronously (" + checkpointer_->sync_reason() + ")");
  if (snapshot_bytes_ > 0)
    os << "; " << format_bytes(double(snapshot_bytes_)) << " of host memory for them on rank 0";
  os << '\n';
  const config::GuardConfig& gc = job_.guard;
  os << "bad-step guard: NaN/Inf steps skipped";
  if (gc.loss_spike_factor > 0)
    os << ", loss spikes above " << gc.loss_spike_factor << " x the running mean (" << gc.loss_window
       << " steps) skipped after " << gc.loss_warmup << " good steps";
  if (gc.rollback_after > 0)
    os << "; " << gc.rollback_after << " bad steps in a row roll back to the last checkpoint (at most "
       << gc.max_rollbacks << " times)";
  else
    os << "; no rollback (guard.rollback_after: 0)";
  os << '\n';
  os << engine_->description();
  os << "rank 0 planned total: " << format_bytes(double(summary_.planned_bytes)) << " (optimizer state "
     << format_bytes(double(engine_->optimizer_bytes())) << "); threads per rank " << threads_ << "; peak "
     << peak_.tflops_per_rank() * 1e3 << " GFLOP/s per rank (" << peak_.source() << ")";
  log_info(os.str());
}

void Trainer::start_loader() {
  // From the data position next_batch_ (a fresh start, a resume, a rollback's skip).
  loader_.reset();
  if (!reads_data_) return;
  data::LoaderOptions opt;
  opt.micro_batch_size = batch_.micro;
  opt.seq_len = job_.train.seq_len;
  opt.global_batch_size = batch_.global;
  opt.dp_size = grid_.shape().dp;
  opt.dp_rank = grid_.coord().dp_rank;
  opt.prefetch = job_.data.prefetch;
  opt.first_batch = next_batch_;
  opt.masker = masker_.get();
  loader_ = std::make_unique<data::AsyncLoader>(*source_, opt);
}

void Trainer::load_step_batch(int t) {
  // Row r of the loader's [micro, T] batch -> its first t tokens (the first t + 1 of the window).
  const int T = job_.train.seq_len;
  for (int mb = 0; mb < batch_.microbatches; ++mb) {
    const data::AsyncLoader::Batch b = loader_->next();
    for (int r = 0; r < batch_.micro; ++r) {
      std::copy_n(b.inputs + std::int64_t(r) * T, t, step_tokens_ + mb * t_mb_elems_ + std::int64_t(r) * t);
      std::copy_n(b.targets + std::int64_t(r) * T, t, step_targets_ + mb * t_mb_elems_ + std::int64_t(r) * t);
    }
  }
}

StepMetrics Trainer::step(long step) {
  const bool saving = checkpointer_->writing();
  const Timer timer;
  const double cpu_start = process_cpu_seconds();
  const config::TrainConfig& tcfg = job_.train;
  if (faults_.failure.rank == grid_.global_rank() && faults_.failure.step == step)
    throw make_error("injected failure at step ", step, " (fault hook: rank=", faults_.failure.rank,
                     ",step=", faults_.failure.step, ")");
  // Sequence-length warm-up: the length follows the tokens trained on (a resumed run has them
  // from its checkpoint).
  if (const int next_t = warmup_seq_len(tcfg, tokens_seen_); next_t != t_) {
    t_ = next_t;
    t_mb_elems_ = std::int64_t(batch_.micro) * t_;
    engine_->set_seq_len(t_);
  }
  // Target tokens of the global batch: known before the step on every rank (masked LM: a pure
  // function of the sample indices), so the gradient is the mean over exactly them.
  const std::uint64_t global_batch_index = next_batch_;
  const std::int64_t step_loss_tokens = loss_tokens(masker_.get(), global_batch_index, batch_.global, t_);
  float grad_scale = step_loss_tokens > 0 ? float(1.0 / double(step_loss_tokens)) : 0.0f;
  if (faults_.bad_batches.hits(FaultHooks::BadBatches::nan_grad, global_batch_index))
    grad_scale = std::numeric_limits<float>::quiet_NaN();
  double data_wait_ms = 0;
  if (loader_) {
    load_step_batch(t_);
    data_wait_ms = loader_->take_wait_ms();
  }
  const parallel::StepStats stats = engine_->run(fill_, grad_scale);
  // The loss lives on the last stage: sum over PP (others add 0) and DP.
  double loss[2] = {stats.loss.sum, double(stats.loss.count)};
  grid_.pp_group().all_reduce(loss, 2);
  grid_.dp_group().all_reduce(loss, 2);
  // The gradient was scaled by 1 / step_loss_tokens, counted before the step; the loss saw the
  // loader's targets. They must agree, or the gradient is not the mean.
  STRATA_CHECK(std::int64_t(loss[1]) == step_loss_tokens, "step ", step, ": the loss covered ",
               std::int64_t(loss[1]), " target tokens but the gradient scale assumed ", step_loss_tokens);
  double mean_loss = loss[1] > 0 ? loss[0] / loss[1] : 0.0;
  if (faults_.bad_batches.hits(FaultHooks::BadBatches::loss_spike, global_batch_index))
    mean_loss *= faults_.bad_batches.factor;
  double grad_norm = engine_->grad_norm();
  // One agreement over the job before anything is applied: a NaN/Inf on any rank, the loss and
  // norm (bitwise the same on every rank, so the guard decides alike everywhere) and a stop
  // signal that reached any rank. Non-finite values stay out of the max (NaN compares false).
  {
    const bool finite = std::isfinite(mean_loss) && std::isfinite(grad_norm);
    double agree[4] = {finite ? 0.0 : 1.0, finite ? mean_loss : 0.0, finite ? grad_norm : 0.0,
                       double(StopSignals::received())};
    grid_.world_group().all_reduce(agree, 4, DType::f64, comm::ReduceOp::max);
    if (agree[0] > 0) {
      if (finite) mean_loss = std::numeric_limits<double>::quiet_NaN();  // another rank saw it
    } else {
      mean_loss = agree[1];
      grad_norm = agree[2];
    }
    stop_ = int(agree[3]);
  }
  const BadKind bad = guard_.judge(mean_loss, grad_norm);
  const double lr = optim::learning_rate(job_.optim, step, tcfg.steps);
  double gather_wait = 0;
  if (bad == BadKind::none)
    gather_wait = engine_->optimizer_step(lr, optim::clip_factor(grad_norm, job_.optim.grad_clip));
  guard_.record(bad, mean_loss);

  StepMetrics s;
  s.step = step;
  s.loss = mean_loss;
  s.lr = lr;
  s.grad_norm = grad_norm;
  s.seq_len = t_;
  s.tokens = std::int64_t(batch_.global) * t_;
  s.loss_tokens = step_loss_tokens;
  s.step_ms = timer.ms();
  s.cpu_ms = 1e3 * (process_cpu_seconds() - cpu_start);  // all ranks' (strata plan --calibrate --time cpu)
  grid_.world_group().all_reduce(&s.cpu_ms, 1, DType::f64, comm::ReduceOp::sum);
  // Throughput and MFU count what the step processed: G x t tokens at the FLOPs per token of
  // length t (masked LM processes every position; only the loss is sparse).
  s.tokens_per_s = double(s.tokens) / (s.step_ms * 1e-3);
  s.tflops = s.tokens_per_s * model::model_flops_per_token(job_.model, t_) / grid_.shape().size() / 1e12;
  s.mfu = peak_.mfu(s.tflops);
  s.mem_bytes = peak_rss_bytes();
  s.compute_ms = stats.compute_s * 1e3;
  s.bubble_fraction = bubble_;
  s.pipeline_wait_ms = stats.pipeline_wait_s * 1e3;
  s.dp_wait_ms = (stats.dp_wait_s + gather_wait) * 1e3;
  s.optimizer_state_bytes = engine_->optimizer_bytes();
  s.data_wait_ms = data_wait_ms;
  s.samples = global_batch_index * std::uint64_t(batch_.global);
  s.skipped = bad != BadKind::none;
  s.bad = bad;
  s.saving = saving;
  ++next_batch_;  // a skipped step's batch is consumed too: the data moves on
  if (!s.skipped) {
    // Tokens trained on (they drive the sequence-length warm-up); a skipped step trained on none.
    tokens_seen_ += std::uint64_t(s.tokens);
    last_lr_ = lr;
  }
  return s;
}

ckpt::TrainState Trainer::train_state(long step) const {
  ckpt::TrainState st;
  st.step = step;
  st.consumed_samples = next_batch_ * std::uint64_t(batch_.global);
  st.tokens_seen = tokens_seen_;
  st.seed = job_.train.seed;
  st.lr = last_lr_;
  st.consumed_per_dataset = source_->consumed_per_dataset(st.consumed_samples);
  st.tokenizer_hash = source_->tokenizer_hash();
  st.guard = guard_.state();
  return st;
}

void Trainer::checkpoint(long step, bool now, StepMetrics& s) {
  // Every rank at the same step boundary. `now`: written and published before returning (a
  // stop signal, the end of the run); otherwise in the background when ckpt.async allows.
  const Timer timer;
  if (now) {
    checkpointer_->wait();  // the background save of an earlier step, published
    s.save_wait_ms = timer.ms();
    report_saves();
    const ckpt::SaveResult r = checkpointer_->save(ckpt_dir_, train_state(step), job_.ckpt.keep);
    summary_.last_checkpoint = r.file;
    if (lead_)
      log_info("checkpoint: step ", step, " saved to ", r.file, " (", format_bytes(double(r.bytes)), " in ",
               r.seconds, " s, ", r.gb_per_s(), " GB/s)");
  } else {
    const ckpt::SaveCost c = checkpointer_->save_async(ckpt_dir_, train_state(step), job_.ckpt.keep);
    s.save_wait_ms = c.wait_s * 1e3;
  }
  s.ckpt_ms = timer.ms();
}

void Trainer::report_saves() {
  // Saves published since the last look (a background one once its writer finished).
  for (const ckpt::SaveResult& r : checkpointer_->take_finished()) {
    summary_.last_checkpoint = r.file;
    if (lead_)
      log_info("checkpoint: step ", r.step, " saved to ", r.file, " (", format_bytes(double(r.bytes)), " in ",
               r.seconds, " s, ", r.gb_per_s(), " GB/s", r.background ? ", in the background" : "", ")");
  }
}

void Trainer::log_bad_step(const StepMetrics& s) const {
  const ckpt::GuardState& g = guard_.state();
  std::ostringstream why;
  if (s.bad == BadKind::nonfinite)
    why << "loss " << s.loss << ", gradient norm " << s.grad_norm << " (not finite)";
  else
    why << "loss " << s.loss << " above " << job_.guard.loss_spike_factor << " x the running mean "
        << g.loss_mean << " (guard.loss_spike_factor)";
  log_warn("step ", s.step, " skipped, no update: ", why.str(), "; data: global batch ",
           s.samples / std::uint64_t(batch_.global), ", samples [", s.samples, ", ",
           s.samples + std::uint64_t(batch_.global), "); ", g.bad_streak, " bad step",
           g.bad_streak == 1 ? "" : "s", " in a row, ", g.skipped_steps, " skipped in the run");
}

long Trainer::rollback(long step) {
  // guard.rollback_after bad steps in a row: back to the newest checkpoint, skipping the data
  // from its position to here (the batches before the trouble and during it, as PaLM did:
  // Chowdhery et al. 2022, sec. 5.1). Collective: every rank decided alike.
  const ckpt::GuardState g = guard_.state();
  std::ostringstream run;
  for (std::size_t i = 0; i < bad_run_.size(); ++i) run << (i ? ", " : "") << bad_run_[i];
  checkpointer_->wait();  // the newest checkpoint may still be being written
  report_saves();
  const std::string target =
      !summary_.last_checkpoint.empty() ? summary_.last_checkpoint : summary_.resumed_from;
  if (target.empty())
    throw make_error("training diverged at step ", step, ": ", g.bad_streak, " bad steps in a row (steps ",
                     run.str(), ") and no checkpoint to roll back to (none saved yet: ckpt.interval is ",
                     job_.ckpt.interval, "; guard.rollback_after: 0 keeps skipping instead)");
  if (!guard_.may_roll_back())
    throw make_error("training diverged at step ", step, ": ", g.bad_streak, " bad steps in a row (steps ",
                     run.str(), ") after ", g.rollbacks, " rollback", g.rollbacks == 1 ? "" : "s",
                     " (guard.max_rollbacks = ", job_.guard.max_rollbacks,
                     "); lower optim.lr or check the data near samples ",
                     g.skipped_samples.empty() ? 0 : g.skipped_samples.back().first);
  const ckpt::TrainState st = checkpointer_->load(target, source_->tokenizer_hash());
  const std::uint64_t skip_end = next_batch_ * std::uint64_t(batch_.global);
  guard_.rolled_back(st.guard, st.consumed_samples, skip_end);
  tokens_seen_ = st.tokens_seen;
  last_lr_ = st.lr;
  start_loader();  // at next_batch_: after the skipped samples
  stragglers_.restart();
  Rollback r{step, st.step, st.consumed_samples, skip_end, target, bad_run_};
  bad_run_.clear();
  std::erase_if(summary_.steps, [&](const StepMetrics& m) { return m.step > st.step; });
  std::erase_if(summary_.evals, [&](const EvalMetrics& m) { return m.step > st.step; });
  summary_.last_step = st.step;
  if (lead_) {
    log_warn("rollback after step ", step, ": ", r.bad_steps.size(), " bad steps in a row (steps ", run.str(),
             "); continuing from ", target, " (step ", st.step, ") and skipping samples [", r.skip_begin,
             ", ", r.skip_end, ") (", (r.skip_end - r.skip_begin) / std::uint64_t(batch_.global),
             " global batches); rollback ", guard_.state().rollbacks, " of at most ",
             job_.guard.max_rollbacks);
    // The dropped steps' lines go; one record says what happened (it carries the checkpoint's
    // step, so it stays when a later resume keeps the lines up to its own checkpoint).
    metrics_->rewind_to(st.step);
    nlohmann::ordered_json j;
    j["step"] = st.step;
    j["rollback"] = {{"from_step", step},
                     {"bad_steps", r.bad_steps},
                     {"skipped_samples", {r.skip_begin, r.skip_end}},
                     {"checkpoint", target}};
    metrics_->write_line(j.dump());
  }
  summary_.rollbacks.push_back(std::move(r));
  return st.step;
}

void Trainer::validate(long step) {
  // Collective: the loss on the fixed held-out set, a metrics line, a log line.
  if (valid_set_->windows() == 0) return;
  const EvalResult e = evaluate(*engine_, grid_, *valid_set_);
  const EvalMetrics m{step, e.loss, e.perplexity(), e.tokens};
  summary_.evals.push_back(m);
  summary_.valid_loss = e.loss;
  if (!lead_) return;
  metrics_->write(m);
  char line[200];
  std::snprintf(
      line, sizeof line,
      "validation at step %ld: loss %.4f | perplexity %.3f | %lld held-out windows, %lld target tokens", step,
      e.loss, e.perplexity(), static_cast<long long>(valid_set_->windows()),
      static_cast<long long>(e.tokens));
  log_line(LogLevel::info, line);
}

void Trainer::log_step(const StepMetrics& s) const {
  metrics_->write(s);
  const config::TrainConfig& tcfg = job_.train;
  if (s.step != summary_.first_step && s.step % tcfg.log_interval != 0 && s.step != tcfg.steps) return;
  char mfu[16];  // "MFU n/a" once a step has exceeded the peak (train/peak.hpp warns once why)
  if (peak_.exceeded() || peak_.tflops_per_rank() <= 0)
    std::snprintf(mfu, sizeof mfu, "n/a");
  else
    std::snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * s.mfu);
  char line[340];
  std::snprintf(
      line, sizeof line,
      "step %5ld/%d | loss %.4f | lr %.3e | grad_norm %.3f | seq %d | %.0f tok/s | %.1f ms | "
      "%.3f TFLOP/s/rank | MFU %s | bubble %.2f | comm wait %.1f ms | data wait %.1f ms | mem %.0f MiB",
      s.step, tcfg.steps, s.loss, s.lr, s.grad_norm, s.seq_len, s.tokens_per_s, s.step_ms, s.tflops, mfu,
      bubble_, s.pipeline_wait_ms + s.dp_wait_ms, s.data_wait_ms, double(s.mem_bytes) / 1048576.0);
  log_line(LogLevel::info, line);
}

void Trainer::keep_final_parameters() {
  // A host copy of this rank's parameters for the tests that compare layouts; a production
  // model's copy (tens of GB per rank, on every rank of a node) is not made.
  std::int64_t numel = 0;
  for (const parallel::ChunkPlan& c : engine_->plan().chunks) numel += c.stage.table.numel();
  if (numel <= (std::int64_t(1) << 28))
    engine_->download_parameters(summary_.final_params, summary_.final_param_info);
}

TrainSummary Trainer::run() {
  const config::TrainConfig& tcfg = job_.train;
  const StopSignals signals;
  if (summary_.first_step > tcfg.steps && lead_)
    log_info("nothing to train: the checkpoint is at step ", resumed_.step, " and train.steps is ",
             tcfg.steps);
  long step = summary_.first_step;
  while (step <= tcfg.steps) {
    StepMetrics s = this->step(step);  // every rank agrees on the guard's verdict and on stop_
    if (s.skipped) {
      bad_run_.push_back(step);
      summary_.bad_steps.push_back(s);
    } else {
      bad_run_.clear();
    }
    if (s.skipped && lead_) log_bad_step(s);
    if (guard_.rollback_due()) {
      step = rollback(step) + 1;
      if (stop_ == 0) continue;
      // A stop signal in the same step: save the rolled-back state and stop.
      StepMetrics none;
      checkpoint(step - 1, true, none);
      summary_.stop_signal = stop_;
      if (lead_) log_warn("stopping after the rollback to step ", step - 1, " on ", signal_name(stop_));
      break;
    }
    // Checkpoints at the step boundary: on a stop signal and at the end written before going
    // on; every ckpt.interval steps in the background — but not on a bad step, so that a
    // rollback finds the state from before the trouble (the next interval saves).
    const bool due = job_.ckpt.interval > 0 && step % job_.ckpt.interval == 0;
    const bool at_end = step == tcfg.steps && job_.ckpt.save_at_end;
    if (stop_ > 0 || at_end) {
      checkpoint(step, true, s);
    } else if (due && s.skipped) {
      if (lead_)
        log_info("checkpoint of step ", step, " not taken: the step was bad (the next interval saves)");
    } else if (due) {
      checkpoint(step, false, s);
    }
    report_saves();
    summary_.steps.push_back(s);
    summary_.last_step = step;
    if (rank_log_)
      std::fprintf(rank_log_.get(),
                   "step %ld loss %.6f compute %.1f ms pipeline wait %.1f ms dp wait %.1f ms\n", step, s.loss,
                   s.compute_ms, s.pipeline_wait_ms, s.dp_wait_ms);
    if (lead_) log_step(s);
    stragglers_.add_step(s.step_ms, s.compute_ms, s.pipeline_wait_ms + s.dp_wait_ms + s.data_wait_ms);
    if (step % tcfg.log_interval == 0 || step == tcfg.steps) {
      const StragglerReport r = stragglers_.gather(step);  // collective: every rank, the same steps
      if (lead_) {
        log_line(LogLevel::info, r.log_line());
        metrics_->write_line(r.json());
      }
    }
    if (stop_ > 0) {
      summary_.stop_signal = stop_;
      if (lead_)
        log_warn("stopping after step ", step, " on ", signal_name(stop_), "; checkpoint ",
                 summary_.last_checkpoint);
      break;
    }
    if (job_.eval.interval > 0 && step % job_.eval.interval == 0) validate(step);
    ++step;
  }
  checkpointer_->wait();  // the last background save, published (or its failure thrown)
  report_saves();
  summary_.guard = guard_.state();
  if (loader_) loader_->stop();
  // Validation at the end (unless the last step just ran it or a stop signal cut the run
  // short), for every layout.
  if (summary_.stop_signal == 0 && summary_.last_step >= summary_.first_step &&
      (summary_.evals.empty() || summary_.evals.back().step != summary_.last_step))
    validate(summary_.last_step);
  if (valid_set_->windows() == 0 && job_.eval.windows > 0 && lead_)
    log_info("validation: skipped, the data source has no held-out windows (data.valid_fraction for hdf5)");
  keep_final_parameters();
  return summary_;
}

}  // namespace

TrainSummary run_training(const config::JobConfig& job, MPI_Comm world, const FaultHooks* faults) {
  const config::ParallelConfig& p = job.parallel;
  comm::RankGrid grid(world, p.tp, p.pp, p.dp, 600.0, p.cp);  // 600 s: the grid's default watchdog
  try {
    // The derived DP size written down: config.yaml and checkpoints record the layout that ran.
    config::JobConfig resolved = job;
    resolved.parallel.dp = grid.shape().dp;
    Trainer trainer(resolved, grid, faults);
    return trainer.run();
  } catch (const std::exception& e) {
    // Name this rank's grid coordinates; main() reports and aborts the job.
    throw Error("[" + grid.coordinates() + "] " + e.what());
  }
}

}  // namespace strata::train
