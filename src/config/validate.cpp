// validate(): the schema's range rules re-checked on the typed structs (so configs built in
// code get the same checks as files), then the rules that span fields. Every message names
// the keys involved and their values: "model.d_model (768) must be divisible by
// model.num_heads (10)".
#include "schema.hpp"
#include "strata/config/capabilities.hpp"
#include "strata/config/cluster.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"

namespace strata::config {

int ModelConfig::ffn() const {
  if (ffn_hidden > 0) return ffn_hidden;
  if (mlp == MlpKind::gelu) return 4 * d_model;
  // SwiGLU (LLaMA, Touvron et al. 2023, sec. 2.2): 2/3 of 4d keeps the parameter count of a
  // 4d GELU MLP with three matrices instead of two; rounded up to a multiple of 256.
  const long hidden = 2L * 4L * d_model / 3L;
  constexpr long multiple = 256;
  return static_cast<int>((hidden + multiple - 1) / multiple * multiple);
}

namespace {

std::string prefix(const std::string& origin) { return origin.empty() ? "" : origin + ": "; }

// Every field against its schema rule: "model.num_layers: expected an integer > 0, got 0".
template <class C>
void check_ranges(const std::string& origin, const char* section, const C& config) {
  C copy = config;  // visit_fields takes a mutable struct; nothing is written
  schema::visit_fields(copy, [&](const char* name, auto& value, schema::Rule rule) {
    using T = std::remove_cvref_t<decltype(value)>;
    if (!schema::satisfies(value, rule))
      throw make_error(prefix(origin), section, ".", name, ": expected ", schema::expectation<T>(rule),
                       ", got ", schema::format_value(value));
  });
}

void check_model(const ModelConfig& m, const std::string& origin) {
  check_ranges(origin, "model", m);
  const std::string at = prefix(origin);
  if (m.d_model % m.num_heads != 0)
    throw make_error(at, "model.d_model (", m.d_model, ") must be divisible by model.num_heads (",
                     m.num_heads, ")");
  if (m.num_kv_heads > m.num_heads || m.num_heads % m.kv_heads() != 0)
    throw make_error(at, "model.num_heads (", m.num_heads, ") must be a multiple of model.num_kv_heads (",
                     m.num_kv_heads, "): each key/value head serves a whole group of query heads");
  if (m.positions == PositionKind::rope && m.head_size() % 2 != 0)
    throw make_error(at,
                     "model.positions is rope, which rotates pairs of dimensions, so the head size "
                     "model.d_model / model.num_heads (",
                     m.d_model, " / ", m.num_heads, " = ", m.head_size(), ") must be even");
}

// Context parallelism (parallel.cp): the sequence in 2 cp equal chunks, a fixed length.
void check_context_parallel(const std::string& at, const JobConfig& job) {
  const ParallelConfig& p = job.parallel;
  const TrainConfig& t = job.train;
  if (p.cp == 1) return;
  if (t.seq_len % (2 * p.cp) != 0)
    throw make_error(at, "parallel.cp = ", p.cp, " splits each sequence into 2 x cp = ", 2 * p.cp,
                     " equal chunks (causal load balance), so train.seq_len (", t.seq_len,
                     ") must be a multiple of ", 2 * p.cp);
  if (t.seq_len_warmup > 0)
    throw make_error(at, "train.seq_len_warmup (", t.seq_len_warmup, ") with parallel.cp = ", p.cp,
                     ": the sequence-length warm-up is not implemented with context parallelism ",
                     "(set train.seq_len_warmup: 0 or parallel.cp: 1)");
  // Ulysses gives each cp rank whole query heads and the KV heads they read (GQA groups stay
  // on one rank): both head counts of a TP rank split over cp.
  const ModelConfig& m = job.model;
  if (p.cp_mode == CpMode::ulysses && p.tp > 0 &&
      ((m.num_heads / p.tp) % p.cp != 0 || (m.kv_heads() / p.tp) % p.cp != 0))
    throw make_error(
        at, "parallel.cp_mode: ulysses gives each of the parallel.cp = ", p.cp,
        " ranks whole attention heads, so the heads per tensor-parallel rank, model.num_heads / ",
        "parallel.tp = ", m.num_heads, " / ", p.tp, " = ", m.num_heads / p.tp,
        ", and the KV heads per tensor-parallel rank, model.num_kv_heads / parallel.tp = ", m.kv_heads(),
        " / ", p.tp, " = ", m.kv_heads() / p.tp, ", must both be divisible by ", p.cp,
        " (use parallel.cp_mode: ring, or a cp that divides both)");
}

}  // namespace

void validate(const ModelConfig& model, const std::string& origin) { check_model(model, origin); }

void validate(const JobConfig& job) {
  const std::string at = prefix(job.source);
  const ModelConfig& m = job.model;
  const ParallelConfig& p = job.parallel;
  const OptimConfig& o = job.optim;
  const TrainConfig& t = job.train;

  check_model(m, job.source);
  check_ranges(job.source, "parallel", p);
  check_ranges(job.source, "optim", o);
  check_ranges(job.source, "train", t);
  check_ranges(job.source, "data", job.data);
  check_ranges(job.source, "hardware", job.hardware);
  if (!job.hardware.cluster.empty()) {
    // The file MFU takes its peak from: it must exist, load, and give the job's precision's peak.
    const bool gpu = job.hardware.device == DeviceKind::cuda;
    ClusterConfig c;
    std::string path;
    try {
      path = find_named_config(job.hardware.cluster, "clusters", "cluster");
      c = load_cluster_config(path);
    } catch (const Error& e) {
      throw make_error(at, "hardware.cluster: ", e.what());
    }
    if ((gpu ? c.peak_tflops_bf16 : c.peak_tflops_fp32) <= 0)
      throw make_error(
          at, "hardware.cluster: ", path, " has no ", gpu ? "peak_tflops_bf16" : "peak_tflops_fp32",
          ", the peak of this job's precision (hardware.device: ", to_string(job.hardware.device), ")");
  }

  // ---- parallel layout against the model (Megatron's tensor/pipeline split) ----
  if (m.num_heads % p.tp != 0)
    throw make_error(at, "model.num_heads (", m.num_heads, ") must be divisible by parallel.tp (", p.tp,
                     "): each tensor-parallel rank holds whole attention heads");
  if (m.kv_heads() % p.tp != 0)
    throw make_error(at, "model.num_kv_heads (", m.kv_heads(), ") must be divisible by parallel.tp (", p.tp,
                     "): each tensor-parallel rank holds whole key/value heads");
  if (m.ffn() % p.tp != 0)
    throw make_error(at, "the MLP width (model.ffn_hidden, resolved to ", m.ffn(),
                     ") must be divisible by parallel.tp (", p.tp, ")");
  const int chunks = p.pp * p.virtual_stages;
  if (m.num_layers < chunks)
    throw make_error(at, "model.num_layers (", m.num_layers, ") must be at least parallel.pp x ",
                     "parallel.virtual_stages (", p.pp, " x ", p.virtual_stages, " = ", chunks,
                     "): every pipeline stage (and model chunk) needs a layer");
  if (!p.layers_per_stage.empty()) {
    int total = 0;
    for (int n : p.layers_per_stage) total += n;
    if (int(p.layers_per_stage.size()) != chunks || total != m.num_layers)
      throw make_error(at, "parallel.layers_per_stage has ", p.layers_per_stage.size(),
                       " entries summing to ", total, "; expected pp x virtual_stages = ", chunks,
                       " entries summing to model.num_layers (", m.num_layers, ")");
  }
  check_context_parallel(at, job);
  if (p.zero_stage > 3) throw make_error(at, "parallel.zero_stage (", p.zero_stage, ") must be 0, 1, 2 or 3");
  if (p.zero_stage >= 2 && p.grad_reduce_dtype == ReduceDType::bf16)
    throw make_error(at, "parallel.zero_stage ", p.zero_stage,
                     " reduces gradients in fp32: set parallel.grad_reduce_dtype: fp32");
  if ((p.virtual_stages > 1) != (p.schedule == PipelineSchedule::interleaved_1f1b))
    throw make_error(at, "parallel.virtual_stages (", p.virtual_stages,
                     ") > 1 goes with parallel.schedule: ", "interleaved_1f1b and only with it (schedule is ",
                     to_string(p.schedule), ")");
  if (p.schedule == PipelineSchedule::zb_h1 && m.recompute == RecomputeKind::full)
    throw make_error(at,
                     "parallel.schedule: zb_h1 keeps every layer's activations until its weight-gradient ",
                     "pass; it does not combine with model.recompute: full (use 1f1b)");
  if (p.global_batch_size > 0) {
    if (p.dp > 0 && p.global_batch_size % (p.micro_batch_size * p.dp) != 0)
      throw make_error(at, "parallel.global_batch_size (", p.global_batch_size,
                       ") must be a multiple of parallel.micro_batch_size x parallel.dp (",
                       p.micro_batch_size, " x ", p.dp, " = ", p.micro_batch_size * p.dp, ")");
    if (p.global_batch_size % p.micro_batch_size != 0)
      throw make_error(at, "parallel.global_batch_size (", p.global_batch_size,
                       ") must be a multiple of parallel.micro_batch_size (", p.micro_batch_size, ")");
  }

  // ---- optimizer and schedule ----
  if (o.min_lr > o.lr)
    throw make_error(at, "optim.min_lr (", schema::format_double(o.min_lr), ") must not exceed optim.lr (",
                     schema::format_double(o.lr), ")");
  // An explicit decay shorter than the warm-up contradicts itself. A run shorter than the
  // warm-up (a smoke test with --set train.steps=10) is allowed: it simply warms up throughout.
  if (o.schedule != ScheduleKind::constant && o.decay_steps > 0 && o.warmup_steps > o.decay_steps)
    throw make_error(at, "optim.warmup_steps (", o.warmup_steps, ") must not exceed the length of the ",
                     to_string(o.schedule), " schedule (optim.decay_steps = ", o.decay_steps, ")");

  // ---- training and data ----
  if (t.seq_len > m.max_seq_len)
    throw make_error(at, "train.seq_len (", t.seq_len, ") must not exceed model.max_seq_len (", m.max_seq_len,
                     ")");
  check_ranges(job.source, "eval", job.eval);
  check_ranges(job.source, "ckpt", job.ckpt);
  check_ranges(job.source, "guard", job.guard);
  if (job.guard.loss_spike_factor > 0 && job.guard.loss_spike_factor <= 1)
    throw make_error(
        at, "guard.loss_spike_factor (", schema::format_double(job.guard.loss_spike_factor),
        ") must be 0 (no loss-spike test) or greater than 1: a step is bad when its loss exceeds this ",
        "multiple of the running mean, and a factor <= 1 would flag ordinary steps");
  // The objective fixes the attention mask: a causal LM that sees the next token learns to
  // copy it; a masked LM restricted to the left context is not BERT.
  if (t.objective == ObjectiveKind::masked_lm && m.attention != AttentionKind::bidirectional)
    throw make_error(at, "train.objective is masked_lm, which needs model.attention: bidirectional (it is ",
                     to_string(m.attention), ")");
  if (t.objective == ObjectiveKind::causal_lm && m.attention != AttentionKind::causal)
    throw make_error(at,
                     "train.objective is causal_lm (next-token prediction), which needs model.attention: ",
                     "causal (it is ", to_string(m.attention),
                     "; set train.objective: masked_lm for a "
                     "bidirectional model)");
  if (t.objective == ObjectiveKind::masked_lm) {
    if (!(t.mlm_probability > 0))
      throw make_error(at, "train.mlm_probability (", schema::format_double(t.mlm_probability),
                       ") must be > 0: masked LM needs positions to predict");
    if (t.mlm_mask_fraction + t.mlm_random_fraction > 1.0 + 1e-12)
      throw make_error(at, "train.mlm_mask_fraction + train.mlm_random_fraction (",
                       schema::format_double(t.mlm_mask_fraction), " + ",
                       schema::format_double(t.mlm_random_fraction), ") must not exceed 1");
  }
  if (t.seq_len_warmup > 0 && t.seq_len_warmup_start > t.seq_len)
    throw make_error(at, "train.seq_len_warmup_start (", t.seq_len_warmup_start,
                     ") must not exceed train.seq_len (", t.seq_len, ")");
  const DataConfig& d = job.data;
  if (d.source == DataSource::hdf5) {
    if (d.datasets.empty())
      throw make_error(at,
                       "data.source is hdf5 but data.datasets is empty: give at least one dataset "
                       "(e.g. datasets: [{path: data/web.h5, weight: 1}])");
    if (!d.paths.empty())
      throw make_error(at, "data.paths is for data.source: text; HDF5 datasets go in data.datasets");
  } else {
    if (!d.datasets.empty())
      throw make_error(at, "data.datasets is set but data.source is ", to_string(d.source),
                       "; set data.source: hdf5 to train on HDF5 datasets");
    if (!d.tokenizer.empty())
      throw make_error(at, "data.tokenizer is only used with data.source: hdf5 (source is ",
                       to_string(d.source), ")");
    if (d.valid_fraction > 0)
      throw make_error(at, "data.valid_fraction is only used with data.source: hdf5 (source is ",
                       to_string(d.source), ")");
  }
  // ---- what the job's backend runs (capabilities.hpp) ----
  if (const std::vector<std::string> no = unsupported(job); !no.empty()) {
    std::string why;
    for (const std::string& line : no) why += (why.empty() ? " " : "; ") + line;
    throw make_error(at, "hardware.device: ", to_string(job.hardware.device), " does not run this job:", why);
  }
  // Curriculum: mixture schedules and difficulty ordering are for blended HDF5 datasets.
  const bool curriculum = d.curriculum != CurriculumOrder::none;
  if ((!d.schedule.empty() || curriculum) && d.source != DataSource::hdf5)
    throw make_error(at, !d.schedule.empty() ? "data.schedule" : "data.curriculum",
                     " is only used with data.source: hdf5 (source is ", to_string(d.source), ")");
  for (std::size_t i = 0; i < d.schedule.size(); ++i) {
    const MixturePoint& pt = d.schedule[i];
    if (pt.weights.size() != d.datasets.size())
      throw make_error(at, "data.schedule[", i, "].weights has ", pt.weights.size(),
                       " weights but data.datasets has ", d.datasets.size(),
                       " datasets (one weight per dataset, in the same order)");
    if (i > 0 && pt.tokens <= d.schedule[i - 1].tokens)
      throw make_error(at, "data.schedule[", i, "].tokens (", pt.tokens,
                       ") must be greater than data.schedule[", i - 1, "].tokens (", d.schedule[i - 1].tokens,
                       "): points are in training order");
  }
  if (curriculum) {
    if (d.curriculum_tokens == 0)
      throw make_error(at, "data.curriculum is ", to_string(d.curriculum),
                       " but data.curriculum_tokens is 0: give the "
                       "tokens over which the pool grows from the easiest windows to all of them");
    if (!(d.curriculum_start > 0 && d.curriculum_start <= 1))
      throw make_error(at, "data.curriculum_start (", schema::format_double(d.curriculum_start),
                       ") must be in (0, 1]: the share of easiest windows drawn from at the start");
  }
  if (d.curriculum == CurriculumOrder::scores && d.curriculum_scores.size() != d.datasets.size())
    throw make_error(
        at, "data.curriculum is scores, which needs one score file per dataset in data.curriculum_scores (",
        d.curriculum_scores.size(), " given for ", d.datasets.size(), " datasets)");
  if (d.curriculum != CurriculumOrder::scores && !d.curriculum_scores.empty())
    throw make_error(at, "data.curriculum_scores is only used with data.curriculum: scores (it is ",
                     to_string(d.curriculum), ")");
  if (job.data.source == DataSource::text) {
    if (job.data.paths.empty())
      throw make_error(at, "data.source is text but data.paths is empty: give at least one file");
    if (m.vocab_size < 256)
      throw make_error(at, "data.source is text, read as bytes (256 symbols), so model.vocab_size (",
                       m.vocab_size, ") must be at least 256");
  }
}

}  // namespace strata::config
