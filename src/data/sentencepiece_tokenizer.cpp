// SentencePiece behind the Tokenizer interface (see sentencepiece_tokenizer.hpp).
#include "strata/data/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <filesystem>

#include "strata/core/error.hpp"
#include "strata/core/rng.hpp"

namespace strata::data {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path)
      : name_(std::filesystem::path(path).stem().string()) {
    if (!std::filesystem::exists(path))
      throw make_error("tokenizer file '", path, "': cannot open (missing)");
    if (const auto status = sp_.Load(path); !status.ok())
      throw make_error("tokenizer file '", path, "': not a SentencePiece model: ", status.ToString());
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx",
                  static_cast<unsigned long long>(core::fnv1a64(sp_.serialized_model_proto())));
    hash_ = buf;
  }

  void encode(std::string_view text, std::vector<std::int32_t>& out) const override {
    std::vector<int> ids;
    if (const auto status = sp_.Encode(absl::string_view(text.data(), text.size()), &ids); !status.ok())
      throw make_error("tokenizer ", name_, ": encode failed: ", status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::vector<int> valid;
    valid.reserve(ids.size());
    for (std::int32_t id : ids)
      if (id >= 0 && id < sp_.GetPieceSize()) valid.push_back(id);  // as the BPE tokenizers: skip padding ids
    std::string text;
    if (const auto status = sp_.Decode(valid, &text); !status.ok())
      throw make_error("tokenizer ", name_, ": decode failed: ", status.ToString());
    return text;
  }
  int vocab_size() const override { return sp_.GetPieceSize(); }
  std::int32_t eos_id() const override { return sp_.eos_id(); }
  std::string name() const override { return name_; }
  std::string content_hash() const override { return hash_; }
  std::int32_t special_token_id(std::string_view text) const override {
    // A piece of the model spelled exactly `text` (control or user-defined symbols such as
    // "[MASK]"); PieceToId answers the unknown id for any other text.
    const int id = sp_.PieceToId(std::string(text));
    return id >= 0 && !sp_.IsUnknown(id) ? id : -1;
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  std::string name_;
  std::string hash_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace strata::data
