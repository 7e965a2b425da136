// WordPiece (Schuster & Nakajima 2012; BERT, Devlin et al. 2019, sec. 3 and Wu et al. 2016,
// sec. 4.1): BERT's basic tokeniser, then greedy longest-match-first subwords.
//
// Basic tokeniser (BERT's tokenization.py BasicTokenizer, Hugging Face's BertNormalizer +
// BertPreTokenizer), in this order:
//   1. clean: U+0000, U+FFFD and control characters (general category C*, except \t \n \r)
//      are removed; whitespace (Unicode White_Space) separates words;
//   2. CJK: every CJK unified ideograph (the blocks BERT lists) is a word of its own;
//   3. lower-case (full Unicode mapping, Final_Sigma included) and strip accents (NFD, then
//      every non-spacing mark, Mn, removed) when the vocabulary is uncased;
//   4. punctuation (ASCII !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ and Unicode P*) is a word of its own.
// WordPiece, per word: a word of more than max_input_chars_per_word (100) code points is
// [UNK]; otherwise the longest vocabulary entry that prefixes the rest of the word is taken,
// spelled with "##" after the first piece, repeatedly; a word with a remainder that no entry
// prefixes is a single [UNK].
//
// Special tokens ([CLS], [SEP], [MASK], [PAD], [UNK]) are never produced from text: "[SEP]"
// in a document is punctuation and letters like any other text. eos_id() is [SEP], so
// `strata prepare` ends every document with it; masked LM finds [MASK] and [CLS] by name.
//
// All-ASCII words take a fast path (table lookups, no ICU); a whitespace-separated chunk with
// any other character goes through ICU (lower-case, NFD, categories).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "strata/data/tokenizer.hpp"

namespace strata::data {

class WordPieceTokenizer final : public Tokenizer {
 public:
  struct Options {
    bool lowercase = true;      // step 3's lower-casing
    bool strip_accents = true;  // step 3's accent stripping (BERT: follows lowercase)
    bool handle_chinese_chars = true;
    bool clean_text = true;
    std::string unk_token = "[UNK]";
    std::string continuing_prefix = "##";
    int max_input_chars_per_word = 100;
  };

  // tokens[id] = the vocabulary entry of id (continuations spelled with the prefix).
  // Throws strata::Error when the unknown token is missing or an entry repeats.
  WordPieceTokenizer(std::string name, std::vector<std::string> tokens, Options options);

  // BERT's vocab.txt: one entry per line, id = line number. Cased or uncased as the
  // vocabulary says: uncased (lowercase + strip accents) when no entry other than the
  // bracketed specials holds an ASCII capital letter.
  static std::unique_ptr<WordPieceTokenizer> from_vocab_txt(const std::string& path, std::string name);
  // A Hugging Face tokenizer.json whose model is WordPiece (normalizer BertNormalizer or none).
  static std::unique_ptr<WordPieceTokenizer> from_tokenizer_json(const std::string& path);
  // Whether a tokenizer.json holds a WordPiece model (else it is byte-level BPE's).
  static bool is_wordpiece_json(const std::string& path);

  void encode(std::string_view text, std::vector<std::int32_t>& out) const override;
  using Tokenizer::encode;
  // Pieces joined: "##x" continues the previous word, other pieces are separated by a space.
  std::string decode(std::span<const std::int32_t> ids) const override;
  int vocab_size() const override { return int(tokens_.size()); }
  std::int32_t eos_id() const override { return sep_id_; }
  std::string name() const override { return name_; }
  std::string content_hash() const override { return hash_; }
  std::int32_t special_token_id(std::string_view text) const override;

  // Steps 1-4 alone: the words WordPiece then splits (lower-cased and stripped as configured).
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  std::int32_t token_id(std::string_view token) const;  // -1 when absent
  const std::string& token(std::int32_t id) const { return tokens_.at(std::size_t(id)); }
  const Options& options() const { return options_; }

 private:
  template <class Word>
  void basic_words(std::string_view text, Word&& word) const;
  void word_pieces(std::string_view word, std::vector<std::int32_t>& out) const;

  std::string name_;
  std::vector<std::string> tokens_;
  Options options_;
  std::unordered_map<std::string_view, std::int32_t> whole_;         // entries without the prefix
  std::unordered_map<std::string_view, std::int32_t> continuation_;  // "##x" keyed by "x"
  std::size_t max_whole_bytes_ = 0, max_continuation_bytes_ = 0;
  std::int32_t unk_id_ = -1, sep_id_ = -1;
  std::string hash_;
};

}  // namespace strata::data
