// `strata prepare`: text -> HDF5 token dataset (docs/data-pipeline.md). Runs alone or under
// `mpirun -np N`; the ranks split the input and write one file.
#include <mpi.h>

#include <fstream>

#include "commands.hpp"
#include "strata/comm/local_communicator.hpp"
#include "strata/comm/mpi_communicator.hpp"
#include "strata/core/error.hpp"
#include "strata/data/prepare.hpp"

namespace strata::cli {

Action add_prepare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "prepare", "Clean, filter, deduplicate, scrub and tokenise text into an HDF5 token dataset");
  auto opt = std::make_shared<data::PrepareOptions>();
  auto report_path = std::make_shared<std::string>();
  auto no_dedup = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>("auto");
  auto split = std::make_shared<std::string>("file");
  data::FilterConfig& f = opt->filters;

  cmd->add_option("-i,--input", opt->inputs, "Input files or folders (plain text, JSONL; .gz accepted)")
      ->required()
      ->expected(1, -1);
  cmd->add_option("-o,--output", opt->output, "Output dataset, e.g. data/web.h5")->required();
  cmd->add_option("-t,--tokenizer", opt->tokenizer, "Tokenizer spec (bytes, gpt2, ...)")
      ->capture_default_str();
  cmd->add_option("--format", *format,
                  "Input format: auto (by extension: .jsonl/.json/.ndjson[.gz]), text, jsonl")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--text-field", opt->text_field, "JSONL: the field holding the text")
      ->capture_default_str();
  cmd->add_option("--doc-split", *split,
                  "Plain text: one document per file, or per blank-line-separated block")
      ->check(CLI::IsMember({"file", "blank-line"}))
      ->capture_default_str();
  cmd->add_flag("--no-normalize{false}", opt->normalize, "Skip Unicode (NFC) and whitespace normalisation");
  cmd->add_flag("--no-filter{false}", opt->filter, "Skip the quality filters");
  cmd->add_flag("--no-dedup", *no_dedup, "Skip exact and near deduplication");
  cmd->add_flag("--no-exact-dedup{false}", opt->exact_dedup, "Skip exact deduplication");
  cmd->add_flag("--no-near-dedup{false}", opt->near_dedup, "Skip near deduplication (MinHash/LSH)");
  cmd->add_flag("--no-pii{false}", opt->pii, "Skip PII scrubbing (e-mail, IP addresses, phone numbers)");
  cmd->add_option("--near-dup-threshold", opt->minhash.threshold,
                  "Jaccard similarity that makes a near-duplicate")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  cmd->add_option("--shingle", opt->minhash.shingle, "Words per MinHash shingle")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--num-perm", opt->minhash.num_perm, "MinHash signature length")
      ->check(CLI::Range(8, 1024))
      ->capture_default_str();
  cmd->add_option("--min-chars", f.min_chars, "Filter: fewest characters (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-chars", f.max_chars, "Filter: most characters (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--min-words", f.min_words, "Filter: fewest words (Gopher: 50)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-words", f.max_words, "Filter: most words (Gopher: 100000; 0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--min-mean-word-length", f.min_mean_word_length, "Filter: shortest mean word length")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-mean-word-length", f.max_mean_word_length, "Filter: longest mean word length")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-symbol-ratio", f.max_symbol_ratio, "Filter: most '#' and '...' per word")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--min-alpha-words", f.min_alphabetic_words,
                  "Filter: least fraction of words with a letter")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-dup-lines", f.max_duplicate_lines, "Filter: most fraction of repeated lines")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max-dup-line-chars", f.max_duplicate_line_chars,
                  "Filter: most fraction of characters in repeated lines")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--quality-model", opt->quality_model,
                  "Learned quality filter: a model from `strata quality train` (scores go to /doc_scores)");
  cmd->add_option("--quality-threshold", opt->quality_threshold,
                  "Keep documents whose quality score is >= this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--quality-pareto", opt->quality_pareto_alpha,
                  "Instead of the threshold: GPT-3's Pareto sampling with this shape (GPT-3: 9)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--quality-seed", opt->quality_seed, "Seed of the Pareto draws")->capture_default_str();
  cmd->add_option("--progress", opt->progress_interval_s, "Seconds between progress lines (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--report", *report_path, "Also write the statistics as JSON to this file");
  cmd->add_flag("--quiet", opt->quiet, "No report on stdout");
  auto timeout = std::make_shared<double>(3600.0);
  cmd->add_option("--comm-timeout", *timeout,
                  "Seconds a rank waits in a collective for the others (watchdog; 0: forever)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  return [opt, report_path, no_dedup, format, split, timeout] {
    opt->format = *format == "text"    ? data::InputFormat::text
                  : *format == "jsonl" ? data::InputFormat::jsonl
                                       : data::InputFormat::auto_detect;
    opt->doc_split = *split == "blank-line" ? data::DocSplit::blank_line : data::DocSplit::file;
    if (*no_dedup) opt->exact_dedup = opt->near_dedup = false;
    // The ranks of the job split the input: one communicator over all of them (a duplicate of
    // the world, so its error handler and lifetime are prepare's own), with the watchdog that
    // ends the job when a collective waits longer than --comm-timeout.
    int world_rank = 0, world_size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    std::unique_ptr<comm::Watchdog> watchdog;
    std::unique_ptr<comm::Communicator> group;
    if (world_size > 1) {
      MPI_Comm dup = MPI_COMM_NULL;
      MPI_Comm_dup(MPI_COMM_WORLD, &dup);
      watchdog = std::make_unique<comm::Watchdog>(*timeout, world_rank);
      group = std::make_unique<comm::MpiCommunicator>(dup, "prepare", world_rank, *timeout, watchdog.get());
    } else {
      group = std::make_unique<comm::LocalCommunicator>("prepare");
    }
    const data::PrepareStats stats = data::run_prepare(*opt, *group);
    if (!report_path->empty() && world_rank == 0) {
      std::ofstream out(*report_path);
      if (!out) throw make_error("cannot write report '", *report_path, "'");
      out << stats.to_json() << '\n';
    }
    return 0;
  };
}

}  // namespace strata::cli
