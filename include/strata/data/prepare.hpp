// `strata prepare`: text in, an HDF5 token dataset out (docs/data-pipeline.md).
//
//   read (files / folders, plain text or JSONL, gzip) -> repair UTF-8 -> normalise -> quality
//   filters -> exact dedup -> near dedup -> PII scrub -> tokenise + EOS -> write
//
// Every step can be switched off and is counted in PrepareStats, which is written into the
// dataset's `statistics` attribute and printed as the report.
//
// The ranks of `comm` (a comm::Communicator) split the input: the documents have one global order (the
// sorted list of input files, then the position in each file), rank r reads a contiguous run
// of files, and so owns a contiguous range of documents. Deduplication is global: hashes and
// MinHash signatures are all-gathered and every rank applies the same in-order rule. Token
// offsets come from an exclusive scan and each rank writes its hyperslab of one file with
// collective parallel HDF5. The tokens are therefore identical for any number of ranks.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/comm/communicator.hpp"
#include "strata/data/dedup.hpp"
#include "strata/data/filters.hpp"

namespace strata::data {

enum class InputFormat { auto_detect, text, jsonl };  // auto: *.jsonl[.gz] / *.json[.gz] are JSONL
enum class DocSplit { file, blank_line };             // plain text: a document per file or per block

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and folders (searched recursively)
  std::string tokenizer = "bytes";  // spec for load_tokenizer()
  std::string output;               // the .h5 to write
  InputFormat format = InputFormat::auto_detect;
  std::string text_field = "text";  // JSONL
  DocSplit doc_split = DocSplit::file;
  bool normalize = true;
  bool filter = true;
  FilterConfig filters;
  bool exact_dedup = true;
  bool near_dedup = true;
  MinHashConfig minhash;
  bool pii = true;
  // Learned quality filter (quality.hpp), after the heuristic filters: documents scored by the
  // model; kept when score >= quality_threshold, or by GPT-3's Pareto rule when
  // quality_pareto_alpha > 0. The scores of the written documents become /doc_scores.
  std::string quality_model;  // "": off
  double quality_threshold = 0.5;
  double quality_pareto_alpha = 0;      // > 0: Pareto sampling (GPT-3: 9) instead of the threshold
  std::uint64_t quality_seed = 0x5eed;  // the Pareto draws
  bool append_eos = true;
  double progress_interval_s = 5.0;  // 0: no progress lines
  bool quiet = false;                // no report on stdout
};

// Counters of one run, summed over ranks. `chars` are bytes of UTF-8.
struct PrepareStats {
  std::uint64_t files = 0, input_bytes = 0;
  std::uint64_t documents_read = 0, chars_read = 0;
  std::uint64_t malformed_lines = 0;  // JSONL lines skipped (bad JSON, no string field)
  std::uint64_t invalid_utf8_docs = 0, invalid_utf8_sequences = 0;  // replaced by U+FFFD
  std::uint64_t normalized_docs = 0;                                // documents the normaliser changed
  std::uint64_t empty_docs = 0, empty_chars = 0;                    // nothing left after normalisation
  std::array<std::uint64_t, kNumFilterRules> filtered_docs{}, filtered_chars{};
  std::uint64_t quality_docs = 0, quality_chars = 0;  // removed by the quality classifier
  std::uint64_t exact_duplicates = 0, exact_duplicate_chars = 0;
  std::uint64_t near_duplicates = 0, near_duplicate_chars = 0;
  std::uint64_t pii_docs = 0, pii_emails = 0, pii_ipv4 = 0, pii_ipv6 = 0, pii_phones = 0;
  std::uint64_t documents_written = 0, chars_written = 0, tokens_written = 0;
  double seconds = 0;  // wall time; the phases below are the slowest rank's
  double read_seconds = 0, dedup_seconds = 0, tokenize_seconds = 0;
  // Finer stages (each the slowest rank's): normalise = UTF-8 repair + normalisation; read
  // (loading the tokenizer, I/O, gunzip, splitting, JSON) = read_seconds minus normalise,
  // filters and quality;
  // exact + near = dedup_seconds (with the collectives); PII + tokenise = tokenize_seconds.
  double normalize_seconds = 0, filter_seconds = 0, quality_seconds = 0;
  double exact_seconds = 0, near_seconds = 0, pii_seconds = 0, write_seconds = 0;

  std::uint64_t filtered_total() const;
  std::string to_json() const;                      // the `statistics` attribute
  std::string report(const PrepareOptions&) const;  // the human-readable table
};

// Runs the pipeline, collective over `comm` (a comm::LocalCommunicator for one process, an
// MpiCommunicator under mpirun: `strata prepare` builds one over the world).
// Throws strata::Error naming the file for unreadable inputs; bad JSONL lines and invalid
// UTF-8 are counted and reported, not fatal.
PrepareStats run_prepare(const PrepareOptions& options, comm::Communicator& comm);

// Every document of `inputs` in global order, UTF-8 repaired and (when options.normalize)
// normalised as prepare does before its filters: what `strata quality train` learns from.
// Only the reading options of `options` matter; max_docs > 0 stops after that many.
std::vector<std::string> read_corpus(const std::vector<std::string>& inputs, const PrepareOptions& options,
                                     std::size_t max_docs = 0);

// The input files in global order: files as given, folders expanded recursively (regular
// files, hidden ones skipped), all sorted by path and de-duplicated.
std::vector<std::string> list_input_files(const std::vector<std::string>& inputs);

}  // namespace strata::data
