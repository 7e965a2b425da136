// `strata eval --ckpt DIR [--data FILE.h5 | --config FILE] [--probes FILE.jsonl]`: a trained
// model's perplexity on held-out text and its accuracy on cloze probes.
//   Perplexity = exp(mean next-token loss) over windows of train.seq_len + 1 tokens, computed
//   with the training forward (model/scoring.hpp). The windows: every window of the --data
//   files (held-out files), or else the held-out split (data.valid_fraction) of the datasets in
//   --config or, by default, in the checkpoint's own config — the windows training held out.
//   Probes: each choice scored by its log-likelihood after the prompt (train/probes.hpp).
//   Masked LM (train.objective: masked_lm): the loss over the chosen positions of the held-out
//   windows, corrupted as the trainer's validation corrupts them, and probes scored by filling
//   [MASK] tokens after the prompt.
//   Per document (--per-document OUT ...): each document of each --data file scored by the
//   checkpoint's model, its mean next-token loss in nats (model/scoring.hpp, document_losses:
//   the document after the dataset's EOS, every token including its closing EOS a target once,
//   the context restarting every train.seq_len tokens), one line per document in document
//   order into OUT: the score file data.curriculum_scores reads (docs/data-pipeline.md).
// Runs on one rank or on tensor-parallel ranks (mpiexec -n TP); rank 0 prints. --per-document
// splits the documents over data-parallel copies: mpiexec -n TP x DP (--tp defaults to 1 there).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "inference_setup.hpp"
#include "strata/comm/collectives.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/sampler.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/model/runtime_model.hpp"
#include "strata/model/scoring.hpp"
#include "strata/train/objectives.hpp"
#include "strata/train/probes.hpp"

namespace strata::cli {

namespace {

struct EvalOptions {
  std::string ckpt, config, probes, tokenizer;
  std::vector<std::string> data;
  std::int64_t windows = 0;
  int batch = 8, tp = 0;
  std::string device;
  std::vector<std::int32_t> logits;       // --logits: token ids whose next-token logits are printed
  std::vector<std::string> per_document;  // --per-document: a score file per --data file
  bool verbose = false, json = false;
};

// --logits: the decoder's next-token logits after each prefix of `tokens` (one forward over the
// whole sequence from position 0), as JSON on rank 0: {"tokens": [...], "logits": [[V], ...]}.
// For checking a model against another implementation of the same weights (tests/cli/ckpt_export.sh
// compares them with an independent forward over the `ckpt export-hf` output).
int print_logits(const std::vector<std::int32_t>& tokens, model::DecoderModel& dec, bool lead) {
  const float* rows = dec.forward(tokens, true);
  if (!lead) return 0;
  nlohmann::json out = {{"tokens", tokens}, {"logits", nlohmann::json::array()}};
  const std::size_t V = std::size_t(dec.vocab_size());
  for (std::size_t i = 0; i < tokens.size(); ++i)
    out["logits"].push_back(std::vector<float>(rows + i * V, rows + (i + 1) * V));
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// The evaluation windows [n, T + 1] and where they came from; empty when there are none.
struct Windows {
  std::vector<std::int32_t> tokens;
  std::vector<std::int64_t> index;  // each window's index in its list (keys its masked-LM masks)
  std::int64_t count = 0;
  std::string origin;
};

// Reads `cap` windows (0: all) spread evenly over the `total` windows `read(i, out)` yields, so a
// capped evaluation samples every dataset rather than the first one.
Windows read_spread(std::int64_t total, std::int64_t cap, std::size_t len,
                    const std::function<void(std::int64_t, std::int32_t*)>& read) {
  Windows w;
  w.count = cap > 0 ? std::min(cap, total) : total;
  w.tokens.resize(std::size_t(w.count) * len);
  for (std::int64_t k = 0; k < w.count; ++k) {
    w.index.push_back(data::spread_index(k, w.count, total));
    read(w.index.back(), w.tokens.data() + std::size_t(k) * len);
  }
  return w;
}

// A --data file, checked against the checkpoint: the same tokenizer, a vocabulary that fits.
data::TokenDataset open_dataset(const std::string& path, const InferenceSetup& s) {
  data::TokenDataset ds(path);
  const data::DatasetInfo& info = ds.info();
  if (!s.info.tokenizer_hash.empty() && info.tokenizer_hash != s.info.tokenizer_hash)
    throw make_error(path, ": tokenised with '", info.tokenizer_name, "' (hash ", info.tokenizer_hash,
                     ") but ", s.info.file, " was trained with hash ", s.info.tokenizer_hash);
  if (info.vocab_size > s.job.model.vocab_size)
    throw make_error(path, ": vocabulary of ", info.vocab_size, " exceeds the model's ",
                     s.job.model.vocab_size);
  return ds;
}

Windows read_windows(const EvalOptions& o, const InferenceSetup& s, int T) {
  const std::size_t len = std::size_t(T) + 1;
  if (!o.data.empty()) {  // held-out files: every window
    std::vector<data::TokenDataset> files;
    std::vector<std::int64_t> first{0};  // first window of each file in the concatenation
    for (const std::string& path : o.data) {
      data::TokenDataset ds = open_dataset(path, s);
      const data::DatasetInfo& info = ds.info();
      const std::int64_t n = std::int64_t(info.num_tokens / len);
      if (n < 1) throw make_error(path, ": ", info.num_tokens, " tokens, fewer than one window of ", len);
      first.push_back(first.back() + n);
      files.push_back(std::move(ds));
    }
    Windows w = read_spread(first.back(), o.windows, len, [&](std::int64_t i, std::int32_t* out) {
      const std::size_t f = std::size_t(std::upper_bound(first.begin(), first.end(), i) - first.begin() - 1);
      files[f].read(std::uint64_t(i - first[f]) * len, len, out);
    });
    w.origin =
        std::to_string(o.data.size()) + " --data file(s) (" + std::to_string(first.back()) + " windows)";
    return w;
  }
  const config::DataConfig dcfg = o.config.empty() ? s.job.data : config::load_job_config(o.config).data;
  if (dcfg.source != config::DataSource::hdf5 || dcfg.valid_fraction <= 0) return {};
  const auto source = data::make_sample_source(dcfg, s.job.model, T, s.job.train.seed);
  Windows w = read_spread(source->num_valid_windows(), o.windows, len,
                          [&](std::int64_t i, std::int32_t* out) { source->valid_window(i, out); });
  std::ostringstream origin;
  origin << "the held-out split (data.valid_fraction " << dcfg.valid_fraction << ", "
         << source->num_valid_windows() << " windows) of " << dcfg.datasets.size() << " dataset(s) of "
         << (o.config.empty() ? std::string("the checkpoint's config") : o.config);
  w.origin = origin.str();
  return w;
}

// Masked LM: the data source that resolves the [MASK] token (and keys the masks of held-out
// windows) — the --data files, or the datasets of --config or of the checkpoint's config.
std::unique_ptr<data::SampleSource> masked_lm_source(const EvalOptions& o, const InferenceSetup& s, int T) {
  config::DataConfig d = o.config.empty() ? s.job.data : config::load_job_config(o.config).data;
  if (!o.data.empty()) {
    d.source = config::DataSource::hdf5;
    d.datasets.clear();
    for (const std::string& path : o.data) d.datasets.push_back({path, 1.0});
    d.valid_fraction = 0;
  }
  return data::make_sample_source(d, s.job.model, T, s.job.train.seed, true);
}

// --per-document: every document of every --data file scored (document_losses); dp-parallel
// over contiguous runs of documents balanced by tokens, gathered in document order on every rank;
// global rank 0 writes the files. Returns the summary for --json.
nlohmann::json score_documents(const EvalOptions& o, const InferenceSetup& s, comm::RankGrid& grid,
                               config::DeviceKind device, bool lead) {
  const int T = s.job.train.seq_len;
  const std::unique_ptr<model::ForwardModel> net =
      model::make_forward_model(device, s.job.model, o.batch, T, grid);
  load_into(*net, s.info.file, grid);
  const int dp = grid.shape().dp, dp_rank = grid.coord().dp_rank;
  nlohmann::json summary = nlohmann::json::array();
  for (std::size_t f = 0; f < o.data.size(); ++f) {
    const Timer timer;
    const data::TokenDataset ds = open_dataset(o.data[f], s);
    const std::vector<std::uint64_t>& off = ds.doc_offsets();
    const std::int64_t docs = std::int64_t(off.size()) - 1;
    // This rank's documents: those whose middle token falls in its share of the tokens.
    std::int64_t first = docs, end = docs;
    for (std::int64_t d = 0; d < docs; ++d) {
      const std::uint64_t mid2 = off[std::size_t(d)] + off[std::size_t(d) + 1];  // twice the middle
      const std::uint64_t total = off.back();
      const int owner =
          total == 0
              ? 0
              : int(std::min<std::uint64_t>(std::uint64_t(dp - 1), mid2 * std::uint64_t(dp) / (2 * total)));
      if (owner == dp_rank && first == docs) first = d;
      if (owner == dp_rank) end = d + 1;
    }
    if (first == docs) end = docs;
    const std::int32_t eos = ds.info().eos_id;
    const std::vector<model::LossSum> local = model::document_losses(
        *net, o.batch, T, end - first, eos, [&](std::int64_t d, std::vector<std::int32_t>& tokens) {
          const std::uint64_t b = off[std::size_t(first + d)], e = off[std::size_t(first + d) + 1];
          tokens.resize(std::size_t(e - b));
          ds.read(b, e - b, tokens.data());
        });
    const std::vector<model::LossSum> all = comm::all_gather_vector(grid.dp_group(), local);
    STRATA_CHECK(std::int64_t(all.size()) == docs, "per-document scores: gathered ", all.size(), " of ", docs,
                 " documents");
    model::LossSum total;
    std::int64_t empty = 0;
    for (const model::LossSum& l : all) total.sum += l.sum, total.count += l.count, empty += l.count == 0;
    std::vector<double> scores(all.size());
    for (std::size_t d = 0; d < all.size(); ++d) scores[d] = all[d].count > 0 ? all[d].mean() : total.mean();
    if (lead) {
      const std::string& out = o.per_document[f];
      const std::string tmp = out + ".tmp";
      {
        std::ofstream w(tmp);
        if (!w) throw make_error("--per-document: cannot write '", out, "'");
        w << "# strata eval --per-document: mean next-token loss (nats) of each document of " << o.data[f]
          << "\n"
          << "# under " << s.info.file << " (" << describe(s.info) << "); the document after "
          << (eos >= 0 ? "the EOS" : "nothing (no EOS: its first token unscored)")
          << ", context restarting every " << T << " tokens\n";
        if (empty > 0)
          w << "# " << empty << " document(s) without a scored token are given the mean token loss "
            << total.mean() << "\n";
        w << "# " << docs << " documents, " << total.count << " tokens scored, mean token loss "
          << total.mean() << "\n";
        char line[32];
        for (const double v : scores) {
          std::snprintf(line, sizeof line, "%.9g\n", v);
          w << line;
        }
        if (!w.flush()) throw make_error("--per-document: write to '", out, "' failed");
      }
      std::filesystem::rename(tmp, out);
      std::vector<double> sorted = scores;
      std::sort(sorted.begin(), sorted.end());
      std::printf(
          "eval: per-document scores of %s: %lld documents, %lld tokens scored, mean token loss %.4f, "
          "document scores min %.4f / median %.4f / max %.4f -> %s (tp %d x dp %d, %.1f s)\n",
          o.data[f].c_str(), static_cast<long long>(docs), static_cast<long long>(total.count), total.mean(),
          sorted.empty() ? 0.0 : sorted.front(), sorted.empty() ? 0.0 : sorted[sorted.size() / 2],
          sorted.empty() ? 0.0 : sorted.back(), out.c_str(), grid.shape().tp, dp, timer.seconds());
    }
    summary.push_back({{"data", o.data[f]},
                       {"out", o.per_document[f]},
                       {"documents", docs},
                       {"tokens", total.count},
                       {"loss", total.mean()}});
  }
  return summary;
}

int run_eval(const EvalOptions& o) {
  int world_size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (o.batch < 1) throw make_error("--batch must be at least 1, got ", o.batch);
  if (o.windows < 0) throw make_error("--windows must be >= 0 (0: all), got ", o.windows);
  // Read the probe file first: a bad file fails before any model is loaded.
  std::vector<train::Probe> probes;
  if (!o.probes.empty()) probes = train::load_probes(o.probes);
  const bool per_document = !o.per_document.empty();
  if (per_document) {
    if (o.data.empty()) throw make_error("--per-document needs the datasets to score: --data FILE.h5 ...");
    if (o.per_document.size() != o.data.size())
      throw make_error("--per-document takes one output file per --data file: ", o.per_document.size(),
                       " given for ", o.data.size(), " dataset(s)");
    if (o.windows != 0)
      throw make_error("--windows does not apply to --per-document (every document is scored)");
    if (!o.logits.empty()) throw make_error("--logits and --per-document are separate uses of eval");
  }
  InferenceSetup s = open_for_inference(o.ckpt, o.tokenizer, !probes.empty(), o.tp, world_size, per_document);
  const config::ModelConfig& mcfg = s.job.model;
  const bool masked = s.job.train.objective == config::ObjectiveKind::masked_lm;
  if (per_document && (masked || mcfg.attention != config::AttentionKind::causal))
    throw make_error("--per-document scores next-token loss: ", s.info.file, " holds a ",
                     masked ? "masked LM" : "bidirectional model",
                     " (train.objective causal_lm and model.attention "
                     "causal are needed)");
  comm::RankGrid grid(MPI_COMM_WORLD, s.tp, 1, s.dp);
  const bool lead = grid.global_rank() == 0;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  kernels::cpu::set_blas_threads(std::max(1, cores / grid.local_size()));
  const int T = s.job.train.seq_len;
  const config::DeviceKind device = inference_device(o.device, s);

  if (!o.logits.empty()) {
    const std::unique_ptr<model::DecoderModel> dec = model::make_decoder_model(device, mcfg, 0, grid);
    load_into(*dec, s.info.file, grid);
    return print_logits(o.logits, *dec, lead);
  }

  nlohmann::json result = {{"checkpoint", s.info.file}, {"step", s.info.step}};
  if (lead) std::printf("eval: %s (%s)\n", s.info.file.c_str(), describe(s.info).c_str());

  // Masked LM: [MASK] from the data source, held-out windows corrupted as the trainer's
  // validation set corrupts them (train::make_masker, validation stream, keyed by window index).
  std::unique_ptr<data::SampleSource> mask_source;
  std::unique_ptr<data::Masker> masker;
  std::int32_t mask_id = -1;
  if (masked) {
    mask_source = masked_lm_source(o, s, T);
    masker = train::make_masker(s.job.train, *mask_source, data::MaskStream::valid);
    mask_id = mask_source->mask_token().mask_id;
    if (lead)
      std::printf("eval: masked LM, [MASK] = %d (%s)\n", mask_id, mask_source->mask_token().origin.c_str());
  }

  if (per_document) result["per_document"] = score_documents(o, s, grid, device, lead);
  const Windows w = per_document ? Windows{} : read_windows(o, s, T);
  if (w.count > 0) {
    const Timer timer;
    // inputs and targets [count, T]: next tokens (causal LM) or the chosen positions (masked LM)
    const std::size_t len = std::size_t(T) + 1;
    std::vector<std::int32_t> inputs(std::size_t(w.count) * std::size_t(T)), targets(inputs.size());
    for (std::int64_t k = 0; k < w.count; ++k) {
      const std::int32_t* win = w.tokens.data() + std::size_t(k) * len;
      std::int32_t* in = inputs.data() + std::size_t(k) * std::size_t(T);
      std::int32_t* tgt = targets.data() + std::size_t(k) * std::size_t(T);
      if (masker) {
        masker->apply(std::uint64_t(w.index[std::size_t(k)]), win, T, in, tgt);
      } else {
        std::copy_n(win, T, in);
        std::copy_n(win + 1, T, tgt);
      }
    }
    const std::unique_ptr<model::ForwardModel> net =
        model::make_forward_model(device, mcfg, o.batch, T, grid);
    load_into(*net, s.info.file, grid);
    const model::LossSum l = model::sequence_loss(*net, o.batch, T, inputs.data(), targets.data(), w.count);
    if (lead)
      std::printf(
          "eval: validation loss %.4f, perplexity %.3f over %lld windows x %d tokens (%lld %s) from %s; "
          "%.1f s\n",
          l.mean(), model::perplexity(l), static_cast<long long>(w.count), T, static_cast<long long>(l.count),
          masked ? "masked positions" : "tokens", w.origin.c_str(), timer.seconds());
    result["validation"] = {{"loss", l.mean()},
                            {"perplexity", model::perplexity(l)},
                            {"windows", w.count},
                            {"tokens", l.count},
                            {"source", w.origin}};
  } else if (lead && !per_document) {
    std::printf(
        "eval: no held-out windows (the checkpoint's data.valid_fraction is 0 or its data is not HDF5); "
        "pass --data FILE.h5 for perplexity\n");
  }
  if (w.count == 0 && probes.empty() && !per_document)
    throw make_error("nothing to evaluate: no held-out windows and no --probes file");

  if (!probes.empty()) {
    const Timer timer;
    const std::unique_ptr<model::DecoderModel> dec = model::make_decoder_model(device, mcfg, 0, grid);
    load_into(*dec, s.info.file, grid);
    const train::ProbeReport r = train::score_probes(*dec, *s.tokenizer, probes, o.probes, mask_id);
    if (lead) {
      if (o.verbose)
        for (std::size_t i = 0; i < probes.size(); ++i) {
          const train::Probe& p = probes[i];
          const train::ProbeScore& sc = r.scores[i];
          std::printf("  %s %s [%s]  chose \"%s\" (log-likelihood %.2f vs answer %.2f)\n",
                      sc.correct ? "ok  " : "MISS", p.prompt.c_str(), p.answer.c_str(),
                      p.choices[std::size_t(sc.predicted)].c_str(),
                      sc.log_likelihood[std::size_t(sc.predicted)],
                      sc.log_likelihood[std::size_t(p.answer_index)]);
        }
      double chance = 0;
      for (const auto& p : probes) chance += 1.0 / double(p.choices.size());
      std::printf("eval: probes %s: %d / %zu correct (accuracy %.1f%%, chance %.1f%%); %.1f s\n",
                  o.probes.c_str(), r.correct, probes.size(), 100.0 * r.accuracy(),
                  100.0 * chance / double(probes.size()), timer.seconds());
    }
    nlohmann::json per = nlohmann::json::array();
    for (std::size_t i = 0; i < probes.size(); ++i)
      per.push_back({{"line", probes[i].line},
                     {"predicted", probes[i].choices[std::size_t(r.scores[i].predicted)]},
                     {"correct", r.scores[i].correct},
                     {"log_likelihood", r.scores[i].log_likelihood}});
    result["probes"] = {{"file", o.probes},
                        {"correct", r.correct},
                        {"total", probes.size()},
                        {"accuracy", r.accuracy()},
                        {"items", per}};
  }
  if (lead && o.json) std::printf("%s\n", result.dump().c_str());
  return 0;
}

}  // namespace

Action add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate a checkpoint: validation perplexity, cloze-probe accuracy, per-document scores: "
      "strata eval --ckpt DIR [--data FILE.h5 [--per-document OUT]] [--probes FILE.jsonl]");
  auto o = std::make_shared<EvalOptions>();
  cmd->add_option("--ckpt", o->ckpt, "Checkpoint file, or a checkpoint directory (its latest checkpoint)")
      ->required();
  cmd->add_option("--data", o->data, "Held-out token datasets (strata prepare); every window is evaluated");
  cmd->add_option("-c,--config", o->config,
                  "Take the datasets and their held-out split from this config's data section")
      ->excludes(cmd->get_option("--data"));
  cmd->add_option(
      "--per-document", o->per_document,
      "Score every document of the --data files instead of their windows: its mean next-token loss (nats), "
      "one line per document, into these files (one per --data file; data.curriculum_scores reads them)");
  cmd->add_option("--probes", o->probes,
                  "Cloze probes, JSONL: {\"prompt\", \"answer\", \"choices\"} per line");
  cmd->add_option("--windows", o->windows, "Evaluate at most this many windows (0: all)")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Windows per forward pass")->capture_default_str();
  cmd->add_option(
      "--tp", o->tp,
      "Tensor-parallel ranks (default: the number of ranks; with --per-document 1, the other ranks "
      "splitting the documents)");
  add_device_option(*cmd, o->device);
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer spec (default: the checkpoint's data.tokenizer; checked against its hash)");
  cmd->add_option(
         "--logits", o->logits,
         "Print the next-token logits after each prefix of these token ids (comma-separated), as JSON")
      ->delimiter(',');
  cmd->add_flag("-v,--verbose", o->verbose, "One line per probe");
  cmd->add_flag("--json", o->json, "Print the results as one JSON object at the end");
  return [o] { return run_eval(*o); };
}

}  // namespace strata::cli
