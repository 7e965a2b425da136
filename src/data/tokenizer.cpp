#include "strata/data/tokenizer.hpp"

#include "strata/core/error.hpp"
#include <cstdio>

#include "strata/core/rng.hpp"

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
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(core::fnv1a64("strata-bytes-v1")));
  return buf;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  throw make_error("unknown tokenizer '", spec, "' (known: bytes)");
}

}  // namespace strata::data
