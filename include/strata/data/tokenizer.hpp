// Tokenizers: text <-> token ids. One interface for every kind strata reads (byte-level,
// GPT-2 byte-level BPE, Hugging Face tokenizer.json, tiktoken rank files, SentencePiece,
// BERT's WordPiece).
//
// Every implementation is immutable after construction, so encode() and decode() are
// thread-safe. content_hash() identifies the vocabulary (and merges): datasets and
// checkpoints record it, and training refuses data tokenised with another tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Append the ids of `text` to `out` (no EOS is added).
  virtual void encode(std::string_view text, std::vector<std::int32_t>& out) const = 0;
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual std::int32_t eos_id() const = 0;       // -1 when the tokenizer has none
  virtual std::string name() const = 0;          // "bytes", "gpt2", "cl100k_base", ...
  virtual std::string content_hash() const = 0;  // hex digest of the vocabulary (and merges)
  // The id of a special (control) token such as "[MASK]" or "<mask>"; -1 when absent.
  virtual std::int32_t special_token_id(std::string_view /*text*/) const { return -1; }

  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids;
    encode(text, ids);
    return ids;
  }
};

// Byte-level: id = byte value (0..255), EOS = 256, vocabulary 257.
class ByteTokenizer final : public Tokenizer {
 public:
  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  std::string decode(std::span<const std::int32_t> ids) const override;
  int vocab_size() const override { return 257; }
  std::int32_t eos_id() const override { return 256; }
  std::string name() const override { return "bytes"; }
  std::string content_hash() const override;
};

// A tokenizer from a spec (docs/tokenizers.md):
//   "bytes"                      ByteTokenizer
//   "gpt2"                       GPT-2's encoder.json + vocab.bpe (or vocab.json + merges.txt) in
//                                $STRATA_TOKENIZER_DIR/gpt2/ or <repo>/.cache/tokenizers/gpt2/
//   "r50k_base" "p50k_base" "cl100k_base" "o200k_base"   <that dir>/<name>.tiktoken
//   "bert-base-uncased"          BERT's WordPiece vocab.txt in <that dir>/bert-base-uncased/
//   <path>.json                  Hugging Face tokenizer.json (byte-level BPE, or WordPiece)
//   <path>.txt                   BERT's WordPiece vocab.txt (one entry per line)
//   <path>.tiktoken              tiktoken rank file; its stem picks the pattern and specials
//   <path>.model                 SentencePiece model
//   <folder>                     GPT-2-format files in that folder (or a vocab.txt: WordPiece)
// An unknown spec or unreadable file is a strata::Error naming it.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace strata::data
