#include "strata/data/tokenizer.hpp"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/sentencepiece_tokenizer.hpp"
#include "strata/data/wordpiece_tokenizer.hpp"

namespace strata::data {

void ByteTokenizer::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  out.reserve(out.size() + text.size());
  for (char c : text) out.push_back(std::int32_t(static_cast<unsigned char>(c)));
}

std::string ByteTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string s;
  s.reserve(ids.size());
  for (std::int32_t id : ids)
    if (id >= 0 && id < 256) s.push_back(char(id));  // EOS and out-of-range ids decode to nothing
  return s;
}

std::string ByteTokenizer::content_hash() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(core::fnv1a64("strata-bytes-v1")));
  return buf;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// GPT-2's two files in `dir`, under either of their names.
std::unique_ptr<Tokenizer> load_gpt2_dir(const std::filesystem::path& dir, std::string name) {
  namespace fs = std::filesystem;
  for (const auto& [vocab, merges] :
       {std::pair{"encoder.json", "vocab.bpe"}, std::pair{"vocab.json", "merges.txt"}})
    if (fs::exists(dir / vocab) && fs::exists(dir / merges))
      return BpeTokenizer::from_gpt2_files((dir / vocab).string(), (dir / merges).string(), std::move(name));
  throw make_error("tokenizer '", name, "': no encoder.json + vocab.bpe (or vocab.json + merges.txt) in '",
                   dir.string(), "' (run scripts/fetch-tokenizers.sh, or set STRATA_TOKENIZER_DIR)");
}

// BERT's vocab.txt, named after its folder (bert-base-uncased/vocab.txt -> "bert-base-uncased").
std::unique_ptr<Tokenizer> load_vocab_txt(const std::filesystem::path& file) {
  const std::string folder = file.parent_path().filename().string();
  return WordPieceTokenizer::from_vocab_txt(file.string(), folder.empty() ? file.stem().string() : folder);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  if (spec == "gpt2") return load_gpt2_dir(fs::path(default_tokenizer_dir()) / "gpt2", "gpt2");
  for (const char* encoding : {"r50k_base", "p50k_base", "cl100k_base", "o200k_base"})
    if (spec == encoding) {
      const fs::path file = fs::path(default_tokenizer_dir()) / (spec + ".tiktoken");
      if (!fs::exists(file))
        throw make_error("tokenizer '", spec, "': '", file.string(),
                         "' is missing (run scripts/fetch-tokenizers.sh, or set STRATA_TOKENIZER_DIR)");
      return BpeTokenizer::from_tiktoken(file.string());
    }
  for (const char* bert : {"bert-base-uncased", "bert-base-cased"})
    if (spec == bert) {
      const fs::path file = fs::path(default_tokenizer_dir()) / spec / "vocab.txt";
      if (!fs::exists(file))
        throw make_error("tokenizer '", spec, "': '", file.string(),
                         "' is missing (run scripts/fetch-tokenizers.sh, or set STRATA_TOKENIZER_DIR)");
      return load_vocab_txt(file);
    }
  if (ends_with(spec, ".json")) {
    if (fs::exists(spec) && WordPieceTokenizer::is_wordpiece_json(spec))
      return WordPieceTokenizer::from_tokenizer_json(spec);
    return BpeTokenizer::from_tokenizer_json(spec);
  }
  if (ends_with(spec, ".txt")) return load_vocab_txt(spec);
  if (ends_with(spec, ".tiktoken")) return BpeTokenizer::from_tiktoken(spec);
  if (ends_with(spec, ".model")) return load_sentencepiece(spec);
  if (fs::is_directory(spec)) {
    if (fs::exists(fs::path(spec) / "vocab.txt") && !fs::exists(fs::path(spec) / "vocab.json") &&
        !fs::exists(fs::path(spec) / "encoder.json"))
      return load_vocab_txt(fs::path(spec) / "vocab.txt");
    return load_gpt2_dir(spec, fs::path(spec).filename().string());
  }
  throw make_error(
      "unknown tokenizer '", spec,
      "' (known: bytes, gpt2, r50k_base, p50k_base, cl100k_base, o200k_base, bert-base-uncased, a "
      "path to a tokenizer.json, a .tiktoken file, a SentencePiece .model, a WordPiece vocab.txt, or a "
      "folder with GPT-2's files or a vocab.txt)");
}

}  // namespace strata::data
