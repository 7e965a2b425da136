// WordPiece and BERT's basic tokeniser (wordpiece_tokenizer.hpp).
#include "strata/data/wordpiece_tokenizer.hpp"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/core/error.hpp"
#include "strata/data/hash.hpp"

namespace strata::data {

namespace {

// ASCII classes: what step 1 and 4 do with each byte < 0x80.
enum : std::uint8_t { kWord, kSpace, kRemoved, kPunct };
constexpr std::array<std::uint8_t, 128> ascii_classes() {
  std::array<std::uint8_t, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      t[std::size_t(c)] = kSpace;
    else if (c < 0x20 || c == 0x7F)
      t[std::size_t(c)] = kRemoved;  // Cc (\v and \f too: BERT removes them)
    else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
      t[std::size_t(c)] = kPunct;
    else
      t[std::size_t(c)] = kWord;
  }
  return t;
}
constexpr std::array<std::uint8_t, 128> kAscii = ascii_classes();

bool is_cjk(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Removed by step 1: NUL, U+FFFD and the "other" categories (control, format, private use,
// surrogate, unassigned), except \t \n \r.
bool is_removed(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c == 0 || c == 0xFFFD) return true;
  switch (u_charType(c)) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
    case U_UNASSIGNED: return true;
    default: return false;
  }
}

bool is_punct(UChar32 c) { return c < 0x80 ? kAscii[std::size_t(c)] == kPunct : bool(u_ispunct(c)); }

// The code point at s[i] (valid UTF-8 expected; an invalid byte reads as U+FFFD, which step 1
// removes) and its length.
UChar32 decode_utf8(std::string_view s, std::size_t i, std::size_t& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  auto cont = [&](std::size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  if (b < 0x80) return len = 1, UChar32(b);
  if (b >= 0xC2 && b <= 0xDF && cont(1)) return len = 2, UChar32(b & 0x1F) << 6 | (s[i + 1] & 0x3F);
  if (b >= 0xE0 && b <= 0xEF && cont(1) && cont(2))
    return len = 3, UChar32(b & 0x0F) << 12 | UChar32(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
  if (b >= 0xF0 && b <= 0xF4 && cont(1) && cont(2) && cont(3))
    return len = 4, UChar32(b & 0x07) << 18 | UChar32(s[i + 1] & 0x3F) << 12 | UChar32(s[i + 2] & 0x3F) << 6 |
                        (s[i + 3] & 0x3F);
  return len = 1, UChar32(0xFFFD);
}

void append_utf8(std::string& out, UChar32 c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

const icu::Normalizer2& nfd() {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFDInstance(err);
  if (U_FAILURE(err) || !n) throw make_error("cannot load ICU's NFD normaliser: ", u_errorName(err));
  return *n;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw make_error("tokenizer file '", path, "': cannot open (",
                     std::filesystem::exists(path) ? "unreadable" : "missing", ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::string name, std::vector<std::string> tokens, Options options)
    : name_(std::move(name)), tokens_(std::move(tokens)), options_(std::move(options)) {
  STRATA_CHECK(options_.max_input_chars_per_word > 0, "WordPiece '", name_,
               "': max_input_chars_per_word must be > 0");
  STRATA_CHECK(!options_.continuing_prefix.empty(), "WordPiece '", name_,
               "': empty continuing-subword prefix");
  const std::string& prefix = options_.continuing_prefix;
  whole_.reserve(tokens_.size());
  continuation_.reserve(tokens_.size() / 4);
  for (std::size_t id = 0; id < tokens_.size(); ++id) {
    const std::string_view t = tokens_[id];
    if (t.empty()) continue;  // an unused id
    const bool cont = t.size() > prefix.size() && t.starts_with(prefix);
    auto& map = cont ? continuation_ : whole_;
    const std::string_view key = cont ? t.substr(prefix.size()) : t;
    if (!map.emplace(key, std::int32_t(id)).second)
      throw make_error("WordPiece '", name_, "': the entry '", t, "' appears twice (ids ", map.at(key),
                       " and ", id, ")");
    (cont ? max_continuation_bytes_ : max_whole_bytes_) =
        std::max(cont ? max_continuation_bytes_ : max_whole_bytes_, key.size());
  }
  unk_id_ = token_id(options_.unk_token);
  STRATA_CHECK(unk_id_ >= 0, "WordPiece '", name_, "': the unknown token '", options_.unk_token,
               "' is not in the vocabulary");
  sep_id_ = token_id("[SEP]");
  Hasher128 h(0x5750);  // "WP"
  h.update("wordpiece-v1\n");
  for (const std::string& t : tokens_) {
    h.update(t);
    h.update("\n", 1);
  }
  const std::string flags =
      std::string(options_.lowercase ? "L" : "l") + (options_.strip_accents ? "A" : "a") +
      (options_.handle_chinese_chars ? "C" : "c") + (options_.clean_text ? "T" : "t") + options_.unk_token +
      "|" + prefix + "|" + std::to_string(options_.max_input_chars_per_word);
  h.update(flags);
  hash_ = h.finish().hex();
}

std::int32_t WordPieceTokenizer::token_id(std::string_view token) const {
  const std::string& prefix = options_.continuing_prefix;
  if (token.size() > prefix.size() && token.starts_with(prefix)) {
    const auto it = continuation_.find(token.substr(prefix.size()));
    return it == continuation_.end() ? -1 : it->second;
  }
  const auto it = whole_.find(token);
  return it == whole_.end() ? -1 : it->second;
}

std::int32_t WordPieceTokenizer::special_token_id(std::string_view text) const {
  if (text.size() < 3 || text.front() != '[' || text.back() != ']') return -1;
  return token_id(text);
}

// Calls word(std::string_view) for each word of steps 1-4, in order.
template <class Word>
void WordPieceTokenizer::basic_words(std::string_view text, Word&& word) const {
  const bool lower = options_.lowercase, clean = options_.clean_text;
  std::string buf;    // the current word (ASCII path) or a converted word (ICU path)
  std::string piece;  // one punctuation character
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // Skip whitespace (and removed characters between words).
    std::size_t len = 1;
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      const std::uint8_t k = kAscii[b];
      if (k == kSpace || (k == kRemoved && clean)) {
        ++i;
        continue;
      }
    } else {
      const UChar32 c = decode_utf8(text, i, len);
      if ((clean && is_removed(c)) || u_isUWhiteSpace(c)) {
        i += len;
        continue;
      }
    }
    // A chunk: up to the next whitespace. All-ASCII chunks take the table path.
    std::size_t end = i;
    bool ascii = true;
    while (end < n) {
      const auto e = static_cast<unsigned char>(text[end]);
      if (e < 0x80) {
        if (kAscii[e] == kSpace) break;
        ++end;
      } else {
        std::size_t l = 1;
        const UChar32 c = decode_utf8(text, end, l);
        if (u_isUWhiteSpace(c) && !(clean && is_removed(c))) break;
        ascii = false;
        end += l;
      }
    }
    if (ascii) {
      buf.clear();
      for (std::size_t p = i; p < end; ++p) {
        const auto c = static_cast<unsigned char>(text[p]);
        const std::uint8_t k = kAscii[c];
        if (k == kRemoved && clean) continue;
        if (k == kPunct) {
          if (!buf.empty()) word(std::string_view(buf)), buf.clear();
          piece.assign(1, char(c));
          word(std::string_view(piece));
          continue;
        }
        buf.push_back(lower && c >= 'A' && c <= 'Z' ? char(c | 0x20) : char(c));
      }
      if (!buf.empty()) word(std::string_view(buf));
    } else {
      // ICU path: clean, pad CJK, lower-case, NFD and strip marks, then split.
      icu::UnicodeString u;
      for (std::size_t p = i; p < end;) {
        std::size_t l = 1;
        const UChar32 c = decode_utf8(text, p, l);
        p += l;
        if (clean && is_removed(c)) continue;
        if (options_.handle_chinese_chars && is_cjk(c)) {
          u.append(UChar32(' ')).append(c).append(UChar32(' '));
        } else {
          u.append(c);
        }
      }
      if (lower) u.toLower(icu::Locale::getRoot());
      if (options_.strip_accents) {
        UErrorCode err = U_ZERO_ERROR;
        icu::UnicodeString d = nfd().normalize(u, err);
        if (U_FAILURE(err)) throw make_error("WordPiece '", name_, "': NFD failed: ", u_errorName(err));
        u.remove();
        for (std::int32_t k = 0; k < d.length();) {
          const UChar32 c = d.char32At(k);
          k += U16_LENGTH(c);
          if (u_charType(c) != U_NON_SPACING_MARK) u.append(c);
        }
      }
      buf.clear();
      for (std::int32_t k = 0; k < u.length();) {
        const UChar32 c = u.char32At(k);
        k += U16_LENGTH(c);
        if (u_isUWhiteSpace(c)) {
          if (!buf.empty()) word(std::string_view(buf)), buf.clear();
        } else if (is_punct(c)) {
          if (!buf.empty()) word(std::string_view(buf)), buf.clear();
          piece.clear();
          append_utf8(piece, c);
          word(std::string_view(piece));
        } else {
          append_utf8(buf, c);
        }
      }
      if (!buf.empty()) word(std::string_view(buf));
    }
    i = end;
  }
}

void WordPieceTokenizer::word_pieces(std::string_view w, std::vector<std::int32_t>& out) const {
  std::size_t chars = 0;
  for (unsigned char c : w) chars += (c & 0xC0) != 0x80;
  if (chars > std::size_t(options_.max_input_chars_per_word)) {
    out.push_back(unk_id_);
    return;
  }
  const std::size_t first = out.size();
  for (std::size_t start = 0; start < w.size();) {
    const auto& map = start == 0 ? whole_ : continuation_;
    const std::size_t max_bytes = start == 0 ? max_whole_bytes_ : max_continuation_bytes_;
    std::size_t end = std::min(w.size(), start + max_bytes);
    std::int32_t id = -1;
    for (; end > start; --end) {
      if (end < w.size() && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80)
        continue;  // inside a character
      const auto it = map.find(w.substr(start, end - start));
      if (it != map.end()) {
        id = it->second;
        break;
      }
    }
    if (id < 0) {  // no entry prefixes the rest: the whole word is unknown
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

void WordPieceTokenizer::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  out.reserve(out.size() + text.size() / 4);
  basic_words(text, [&](std::string_view w) { word_pieces(w, out); });
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  basic_words(text, [&](std::string_view w) { words.emplace_back(w); });
  return words;
}

std::string WordPieceTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string s;
  const std::string& prefix = options_.continuing_prefix;
  for (const std::int32_t id : ids) {
    if (id < 0 || std::size_t(id) >= tokens_.size() || tokens_[std::size_t(id)].empty()) continue;
    const std::string& t = tokens_[std::size_t(id)];
    if (t.size() > prefix.size() && t.starts_with(prefix)) {
      s.append(t, prefix.size(), std::string::npos);
    } else {
      if (!s.empty()) s.push_back(' ');
      s += t;
    }
  }
  return s;
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_vocab_txt(const std::string& path,
                                                                       std::string name) {
  const std::string text = read_text(path);
  std::vector<std::string> tokens;
  bool cased = false;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    std::string t = text.substr(pos, e - pos);
    pos = e + 1;
    ++line_no;
    // BERT's load_vocab strips each line.
    while (!t.empty() && (t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
    std::size_t lead = 0;
    while (lead < t.size() && (t[lead] == ' ' || t[lead] == '\t')) ++lead;
    t.erase(0, lead);
    if (t.empty())
      throw make_error("tokenizer file '", path, "': line ", line_no, " is empty (one entry per line)");
    if (!(t.front() == '[' && t.back() == ']'))
      for (char c : t) cased = cased || (c >= 'A' && c <= 'Z');
    tokens.push_back(std::move(t));
  }
  if (tokens.empty()) throw make_error("tokenizer file '", path, "': no entries");
  Options o;
  o.lowercase = o.strip_accents = !cased;
  try {
    return std::make_unique<WordPieceTokenizer>(std::move(name), std::move(tokens), o);
  } catch (const Error& e) {
    throw make_error("tokenizer file '", path, "': ", e.what());
  }
}

bool WordPieceTokenizer::is_wordpiece_json(const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(read_text(path), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("model") && j["model"].is_object() &&
         j["model"].value("type", "") == "WordPiece";
}

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_tokenizer_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw make_error("tokenizer file '", path, "': bad JSON: ", e.what());
  }
  const auto& m = j.at("model");
  if (!m.is_object() || m.value("type", "") != "WordPiece")
    throw make_error("tokenizer file '", path, "': model.type is not WordPiece");
  if (!m.contains("vocab") || !m["vocab"].is_object())
    throw make_error("tokenizer file '", path, "': model.vocab is not a JSON object");
  std::vector<std::string> tokens;
  for (const auto& [text, value] : m["vocab"].items()) {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > (1 << 30))
      throw make_error("tokenizer file '", path, "': token '", text, "' has id ", value.dump());
    const std::size_t id = value.get<std::size_t>();
    if (id >= tokens.size()) tokens.resize(id + 1);
    if (!tokens[id].empty())
      throw make_error("tokenizer file '", path, "': id ", id, " is given to two tokens");
    tokens[id] = text;
  }
  Options o;
  o.unk_token = m.value("unk_token", std::string("[UNK]"));
  o.continuing_prefix = m.value("continuing_subword_prefix", std::string("##"));
  o.max_input_chars_per_word = m.value("max_input_chars_per_word", 100);
  const nlohmann::json norm = j.value("normalizer", nlohmann::json());
  if (norm.is_null()) {
    o.lowercase = o.strip_accents = o.handle_chinese_chars = o.clean_text = false;
  } else if (norm.is_object() && norm.value("type", "") == "BertNormalizer") {
    o.clean_text = norm.value("clean_text", true);
    o.handle_chinese_chars = norm.value("handle_chinese_chars", true);
    o.lowercase = norm.value("lowercase", true);
    const auto sa = norm.value("strip_accents", nlohmann::json());
    o.strip_accents = sa.is_boolean() ? sa.get<bool>() : o.lowercase;
  } else {
    throw make_error("tokenizer file '", path, "': normalizer '", norm.value("type", std::string("?")),
                     "' is not supported with WordPiece (BertNormalizer or none)");
  }
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  if (!pre.is_null() && !(pre.is_object() && pre.value("type", "") == "BertPreTokenizer"))
    throw make_error("tokenizer file '", path, "': pre_tokenizer '", pre.value("type", std::string("?")),
                     "' is not supported with WordPiece (BertPreTokenizer)");
  namespace fs = std::filesystem;
  const fs::path p(path);
  std::string name = p.has_parent_path() && !p.parent_path().filename().empty()
                         ? p.parent_path().filename().string()
                         : p.stem().string();
  try {
    return std::make_unique<WordPieceTokenizer>(std::move(name), std::move(tokens), o);
  } catch (const Error& e) {
    throw make_error("tokenizer file '", path, "': ", e.what());
  }
}

}  // namespace strata::data
