// HDF5 token datasets: the on-disk format `strata prepare` writes and training reads
// (DESIGN.md "Data"; the full layout and every check are in docs/data-format.md).
//
//   /tokens        uint16 when the vocabulary fits (vocab_size <= 65536), else uint32;
//                  1-D, chunked; all documents concatenated, each ending in EOS
//   /doc_offsets   uint64, num_documents + 1 entries: document i is tokens
//                  [doc_offsets[i], doc_offsets[i+1]); doc_offsets[0] = 0, the last = num_tokens
//   attributes on the root group: format_version, tokenizer_name, tokenizer_hash, vocab_size,
//   eos_id, source, num_documents, num_tokens, statistics (JSON text from prepare)
//
// The writer is collective over a comm::Communicator (parallel HDF5, one hyperslab per rank)
// and publishes the file by renaming it from a temporary name, so a failed run never leaves a
// half-written file under the final name. The reader validates everything before use.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "strata/comm/communicator.hpp"

namespace strata::data {

inline constexpr int kFormatVersion = 1;

struct DatasetInfo {
  int format_version = kFormatVersion;
  std::string tokenizer_name;
  std::string tokenizer_hash;
  int vocab_size = 0;
  std::int32_t eos_id = -1;  // -1: the tokenizer has no EOS
  std::string source;        // what the tokens were made from
  std::uint64_t num_documents = 0;
  std::uint64_t num_tokens = 0;
  std::string statistics = "{}";  // JSON: what each prepare step kept and removed
  int token_bytes = 2;            // 2 (uint16) or 4 (uint32); follows vocab_size
};

// 2 when every id fits uint16 (vocab_size <= 65536), else 4.
int token_bytes_for_vocab(int vocab_size);

// Collective over `comm` (a comm::LocalCommunicator when the caller is alone; more than one
// rank needs an MpiCommunicator, whose handle parallel HDF5 opens the file with). Each rank
// passes its share of the documents, in rank order: its tokens and the length of each of its
// documents, and optionally a score per document (written as /doc_scores, float32: the
// quality classifier's P(curated); all ranks give scores or none do). Offsets are placed with
// an exclusive scan, so rank r's documents follow rank r-1's. `info`'s counts and token width
// are filled in here (the global totals). Writes `path`.tmp and renames it to `path` when
// every rank has finished.
void write_token_dataset(const std::string& path, comm::Communicator& comm, DatasetInfo info,
                         std::span<const std::int32_t> local_tokens,
                         std::span<const std::uint64_t> local_doc_lengths,
                         std::span<const float> local_doc_scores = {});

// A validated, open dataset. Reads go straight to the file (no HDF5 chunk cache: windows are
// random), converting to int32. Not thread-safe: one thread reads at a time.
class TokenDataset {
 public:
  // Opens `path` and checks the layout, dtypes, attributes, counts and every offset; any
  // problem is a strata::Error naming the file and what is wrong.
  explicit TokenDataset(const std::string& path);
  ~TokenDataset();
  TokenDataset(TokenDataset&&) noexcept;
  TokenDataset& operator=(TokenDataset&&) noexcept;
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  const std::string& path() const { return path_; }
  const DatasetInfo& info() const { return info_; }
  std::uint64_t num_tokens() const { return info_.num_tokens; }
  std::uint64_t num_documents() const { return info_.num_documents; }
  const std::vector<std::uint64_t>& doc_offsets() const { return offsets_; }
  // /doc_scores (one float per document) when the file has it (prepare --quality-model).
  bool has_doc_scores() const { return has_scores_; }
  std::vector<float> read_doc_scores() const;  // throws naming the file when absent

  // tokens [start, start + count) into out (int32).
  void read(std::uint64_t start, std::uint64_t count, std::int32_t* out) const;

 private:
  void read_unlocked(std::uint64_t start, std::uint64_t count,
                     std::int32_t* out) const;  // caller holds the HDF5 lock
 public:
 private:
  struct Handles;
  std::string path_;
  DatasetInfo info_;
  std::vector<std::uint64_t> offsets_;
  bool has_scores_ = false;
  std::unique_ptr<Handles> h_;
  mutable std::vector<std::uint16_t> narrow_;  // staging for uint16 reads
};

// A stable 128-bit digest (hex) of a dataset's /tokens and /doc_offsets values: equal digests
// mean the same tokens and boundaries, whatever the file's HDF5 layout.
std::string content_digest(const TokenDataset& ds);

}  // namespace strata::data
