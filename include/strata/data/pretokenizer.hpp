// Pre-tokenisers: split text into the pieces that byte-level BPE encodes one at a time.
//
// Each pattern is the regular expression of its encoding, implemented as a hand-written
// scanner over Unicode general categories (ICU) instead of a regex engine, which is what
// makes encoding fast. The scanners reproduce the leftmost-alternative, greedy-with-
// backtracking semantics of the regexes below exactly:
//
//   gpt2    (GPT-2, r50k_base, p50k_base)
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   cl100k  (cl100k_base)
//     '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
//     |\s+$|\s*[\r\n]|\s+(?!\S)|\s
//   o200k   (o200k_base)
//     [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//     |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//     |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// \s is the Unicode White_Space property (as in tiktoken's Rust regex). Bytes that are not
// valid UTF-8 are each treated as one character of category "other" (neither letter,
// number nor space), so every input splits, and the pieces always concatenate to the input.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

enum class PreTokenizer { gpt2, cl100k, o200k };

// The end (byte offset) of the piece that starts at byte `pos` < text.size().
std::size_t pretoken_end(PreTokenizer kind, std::string_view text, std::size_t pos);

// All pieces of `text`, in order (for tests and tools; encoding iterates pretoken_end).
std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text);

// The regular expression of a pattern, as written above (Hugging Face tokenizer.json stores it).
const char* pretokenizer_regex(PreTokenizer kind);
const char* pretokenizer_name(PreTokenizer kind);  // "gpt2", "cl100k", "o200k"

}  // namespace strata::data
