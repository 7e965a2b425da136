// Byte-level BPE (Radford et al. 2019, "Language Models are Unsupervised Multitask
// Learners", section 2.2; Sennrich et al. 2016 for BPE itself): GPT-2's vocab.json +
// merges.txt, Hugging Face tokenizer.json, tiktoken rank files, and tokenizers trained here.
//
// Encoding: the pre-tokeniser (pretokenizer.hpp) splits the text into pieces; each piece's
// UTF-8 bytes start as one token per byte, and the adjacent pair with the lowest merge rank
// is merged (leftmost first among equals) until no pair has a rank. A merge list gives a
// pair its line number as rank; a tiktoken file gives the pair (a, b) the rank of the token
// a+b. Results per piece are memoised in a per-thread cache (no shared mutable state), so
// encode() is thread-safe and runs at tens of MB/s on English prose.
//
// Token ids index `token_bytes`: every token is a byte string; special tokens
// (<|endoftext|>, ...) are never produced by encode() from text (it encodes their
// characters like any other text), only appended by callers via eos_id().
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/data/pretokenizer.hpp"
#include "strata/data/token_index.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::data {

// GPT-2's reversible byte -> printable character map (bytes_to_unicode in GPT-2's
// encoder.py): vocab.json, merges.txt and tokenizer.json spell byte-level tokens with it.
std::string bytes_to_gpt2_chars(std::string_view bytes);
// The inverse; false when `chars` holds a character outside the map.
bool gpt2_chars_to_bytes(std::string_view chars, std::string& bytes);

class BpeTokenizer final : public Tokenizer {
 public:
  struct Merge {
    std::int32_t left, right;  // the pair, merged into the token left+right
  };
  struct Special {
    std::string text;
    std::int32_t id;
  };
  struct Options {
    PreTokenizer pattern = PreTokenizer::gpt2;
    bool rank_merges = false;  // true: tiktoken, pair rank = rank of the merged token; false: merge list
    bool whole_piece_lookup =
        false;  // a piece that is itself a token is emitted as is (tiktoken, HF ignore_merges)
    bool add_prefix_space =
        false;  // HF ByteLevel add_prefix_space: encode " " + text unless it starts with ' '
  };

  // `tokens[id]` = the bytes of token id (empty for an unused id); `merges` in rank order
  // (ignored with rank_merges); `specials` name ids in `tokens` (or beyond: they are added).
  // Throws strata::Error if a byte has no single-byte token or a merge is inconsistent.
  BpeTokenizer(std::string name, std::vector<std::string> tokens, std::vector<Merge> merges,
               std::vector<Special> specials, Options options);
  ~BpeTokenizer() override;
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // GPT-2's files: encoder.json (= vocab.json) and vocab.bpe (= merges.txt).
  static std::unique_ptr<BpeTokenizer> from_gpt2_files(const std::string& vocab_json,
                                                       const std::string& merges_txt,
                                                       std::string name = "gpt2");
  // A Hugging Face tokenizer.json whose model is byte-level BPE.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  // A tiktoken rank file; the stem (r50k_base, p50k_base, cl100k_base, o200k_base) picks
  // the pattern and the special tokens.
  static std::unique_ptr<BpeTokenizer> from_tiktoken(const std::string& path);

  // Write Hugging Face tokenizer.json (model BPE, ByteLevel pre-tokeniser and decoder).
  // Needs a merge list: not available for a tokenizer read from a tiktoken file.
  void save_tokenizer_json(const std::string& path) const;

  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  using Tokenizer::encode;
  // Ids out of range (e.g. a model's padded vocabulary) decode to nothing.
  std::string decode(std::span<const std::int32_t> ids) const override;
  int vocab_size() const override { return int(tokens_.size()); }
  std::int32_t eos_id() const override { return eos_id_; }
  std::string name() const override { return name_; }
  std::string content_hash() const override { return hash_; }
  std::int32_t special_token_id(std::string_view text) const override {
    for (const Special& s : specials_)
      if (s.text == text) return s.id;
    return -1;
  }

  // BPE of one piece (no pre-tokenisation, no cache); `heap` picks the O(n log n) merge
  // loop used for long pieces instead of the O(n^2) one used for short pieces. For tests.
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out, bool heap) const;

  std::int32_t token_id(std::string_view bytes) const;  // -1 when absent
  const std::string& token_bytes(std::int32_t id) const { return tokens_.at(std::size_t(id)); }
  const std::vector<Merge>& merges() const { return merges_; }
  const std::vector<Special>& specials() const { return specials_; }
  const Options& options() const { return options_; }

 private:
  struct PairTable;
  void bpe_small(const unsigned char* p, std::size_t n, std::vector<std::int32_t>& out) const;
  void bpe_heap(const unsigned char* p, std::size_t n, std::vector<std::int32_t>& out) const;
  void encode_uncached(std::string_view piece, std::vector<std::int32_t>& out) const;

  std::string name_;
  std::vector<std::string> tokens_;
  std::vector<Merge> merges_;
  std::vector<Special> specials_;
  Options options_;
  TokenIndex index_;  // bytes -> id (views into tokens_)
  std::unique_ptr<PairTable> pairs_;
  std::vector<std::uint64_t> byte_pairs_;  // pairs_ for two byte tokens: [first byte << 8 | second]
  std::int32_t byte_id_[256];
  std::int32_t eos_id_ = -1;
  std::string hash_;
  std::uint64_t instance_;  // keys the per-thread cache
};

// Train a byte-level BPE tokenizer (GPT-2 pre-tokeniser) on `texts`: 256 byte tokens, then
// merges of the most frequent adjacent pair (ties: the smallest pair of ids) until
// `vocab_size` tokens including `special_tokens` (appended last; the first, or
// <|endoftext|> when listed, is the EOS). Stops early when no pair occurs twice.
std::unique_ptr<BpeTokenizer> train_bpe(std::span<const std::string> texts, int vocab_size,
                                        std::vector<std::string> special_tokens = {"<|endoftext|>"},
                                        std::string name = "bpe");

// The folder of the tokenizer files ("gpt2" spec: <dir>/gpt2/): $STRATA_TOKENIZER_DIR if set,
// else the first tokenizers/ or .cache/tokenizers/ under strata's resource roots
// ($STRATA_HOME, an installed tree's share/strata, the program's folder and those above it:
// core/paths.hpp; scripts/fetch-tokenizers.sh fills <source>/.cache/tokenizers), else
// ./.cache/tokenizers.
std::string default_tokenizer_dir();

}  // namespace strata::data
