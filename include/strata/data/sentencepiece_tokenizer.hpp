// SentencePiece models (Kudo & Richardson 2018) through Debian's libsentencepiece: the
// LLaMA-2-style tokenizer.model files. Encoding and decoding are the library's; the
// processor is immutable after loading, so encode() is thread-safe.
#pragma once
#include <memory>
#include <string>

#include "strata/data/tokenizer.hpp"

namespace strata::data {

// A tokenizer from a SentencePiece .model file; name = the file stem, EOS from the model,
// content_hash = FNV-1a 64 of the serialised model. Errors name the file.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

}  // namespace strata::data
