// Hand-written scanners for the GPT-2, cl100k and o200k pre-tokeniser regexes (see
// pretokenizer.hpp for the patterns). Each function reads one piece starting at `i` by
// trying the regex's alternatives in order, with the backtracking each alternative would do
// spelled out where it matters (`\s+(?!\S)` gives back the last space; `\s*[\r\n]` ends at
// the last line break of the space run; o200k's `[U]*[W]+` gives back a U∩W character).
//
// Character classes come from ICU's general categories, looked up once per code point of
// the Basic Multilingual Plane into a 64 KiB table (ASCII is the hot path) and directly from
// ICU above it.
#include "strata/data/pretokenizer.hpp"

#include <unicode/uchar.h>

#include <array>
#include <cstdint>
#include <memory>

namespace strata::data {
namespace {

// Class bits of one code point.
enum : std::uint8_t {
  kL = 1,   // \p{L}
  kN = 2,   // \p{N}
  kS = 4,   // \s: the White_Space property
  kU = 8,   // o200k's upper set  [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
  kW = 16,  // o200k's lower set  [\p{Ll}\p{Lm}\p{Lo}\p{M}]
};
constexpr std::uint8_t kOtherMask = kL | kN | kS;  // "other" = none of these

std::uint8_t classify(UChar32 cp) {
  std::uint8_t f = 0;
  if (u_isUWhiteSpace(cp)) f |= kS;
  switch (u_charType(cp)) {
    case U_UPPERCASE_LETTER:
    case U_TITLECASE_LETTER: f |= kL | kU; break;
    case U_LOWERCASE_LETTER: f |= kL | kW; break;
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER: f |= kL | kU | kW; break;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK: f |= kU | kW; break;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER: f |= kN; break;
    default: break;
  }
  return f;
}

struct BmpTable {
  std::array<std::uint8_t, 0x10000> flags;
  BmpTable() {
    for (UChar32 cp = 0; cp < 0x10000; ++cp) flags[cp] = classify(cp);
  }
};

const BmpTable& bmp() {
  static const std::unique_ptr<BmpTable> table = std::make_unique<BmpTable>();  // built once, then read-only
  return *table;
}

// One decoded character: its class bits, its length in bytes and its code point
// (kInvalid for a byte that does not start a valid UTF-8 sequence).
constexpr std::uint32_t kInvalid = 0xFFFFFFFFu;
struct Ch {
  std::uint8_t flags;
  std::uint8_t len;
  std::uint32_t cp;
};

class Scanner {
 public:
  explicit Scanner(std::string_view t)
      : s_(reinterpret_cast<const unsigned char*>(t.data())), n_(t.size()), table_(bmp().flags.data()) {}

  std::size_t size() const { return n_; }
  unsigned char byte(std::size_t i) const { return s_[i]; }

  Ch at(std::size_t i) const {
    const unsigned char b0 = s_[i];
    if (b0 < 0x80) return {table_[b0], 1, b0};
    const std::size_t left = n_ - i;
    auto cont = [&](std::size_t k) { return (s_[i + k] & 0xC0) == 0x80; };
    std::uint32_t cp = kInvalid;
    std::uint8_t len = 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      if (left >= 2 && cont(1)) cp = ((b0 & 0x1Fu) << 6) | (s_[i + 1] & 0x3Fu), len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      if (left >= 3 && cont(1) && cont(2)) {
        const unsigned char b1 = s_[i + 1];
        const bool ok = (b0 == 0xE0) ? b1 >= 0xA0 : (b0 == 0xED) ? b1 < 0xA0 : true;
        if (ok) cp = ((b0 & 0x0Fu) << 12) | ((b1 & 0x3Fu) << 6) | (s_[i + 2] & 0x3Fu), len = 3;
      }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      if (left >= 4 && cont(1) && cont(2) && cont(3)) {
        const unsigned char b1 = s_[i + 1];
        const bool ok = (b0 == 0xF0) ? b1 >= 0x90 : (b0 == 0xF4) ? b1 < 0x90 : true;
        if (ok)
          cp = ((b0 & 0x07u) << 18) | ((b1 & 0x3Fu) << 12) | ((s_[i + 2] & 0x3Fu) << 6) | (s_[i + 3] & 0x3Fu),
          len = 4;
      }
    }
    if (cp == kInvalid) return {0, 1, kInvalid};
    return {cp < 0x10000 ? table_[cp] : classify(UChar32(cp)), len, cp};
  }

  // End of the run of characters that have any bit of `mask` starting at i. (Each run first
  // takes the ASCII bytes it can with one table load per byte, the common case, then goes on
  // character by character.)
  std::size_t run_any(std::size_t i, std::uint8_t mask) const {
    while (i < n_ && s_[i] < 0x80 && (table_[s_[i]] & mask)) ++i;
    while (i < n_) {
      const Ch c = at(i);
      if (!(c.flags & mask)) break;
      i += c.len;
    }
    return i;
  }
  // End of the run of "other" characters (none of L, N, S) starting at i.
  std::size_t run_other(std::size_t i) const {
    while (i < n_ && s_[i] < 0x80 && !(table_[s_[i]] & kOtherMask)) ++i;
    while (i < n_) {
      const Ch c = at(i);
      if (c.flags & kOtherMask) break;
      i += c.len;
    }
    return i;
  }
  // End of up to `max` characters with any bit of `mask`.
  std::size_t run_any_upto(std::size_t i, std::uint8_t mask, int max) const {
    for (int k = 0; k < max && i < n_; ++k) {
      const Ch c = at(i);
      if (!(c.flags & mask)) break;
      i += c.len;
    }
    return i;
  }
  bool is_other_at(std::size_t i) const { return i < n_ && !(at(i).flags & kOtherMask); }

  // A whitespace run starting at i (which holds a space character).
  struct SpaceRun {
    std::size_t end;        // byte after the run
    std::size_t last;       // start of the run's last character
    std::size_t last_crlf;  // byte offset of the last \r or \n in the run, or npos
    int chars;
  };
  SpaceRun space_run(std::size_t i) const {
    SpaceRun r{i, i, std::string_view::npos, 0};
    while (r.end < n_) {
      const Ch c = at(r.end);
      if (!(c.flags & kS)) break;
      if (c.cp == '\r' || c.cp == '\n') r.last_crlf = r.end;
      r.last = r.end;
      r.end += c.len;
      ++r.chars;
    }
    return r;
  }

  // Length of a contraction 's 't 're 've 'm 'll 'd at i (which holds '\''), or 0.
  // GPT-2 matches it case-sensitively, cl100k and o200k case-insensitively.
  std::size_t contraction(std::size_t i, bool ignore_case) const {
    if (i >= n_ || s_[i] != '\'') return 0;
    auto low = [&](std::size_t k) -> int {
      if (i + k >= n_) return 0;
      const int c = s_[i + k];
      return (ignore_case && c >= 'A' && c <= 'Z') ? c + 32 : c;
    };
    const int a = low(1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    const int b = low(2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

 private:
  const unsigned char* s_;
  std::size_t n_;
  const std::uint8_t* table_;
};

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::size_t gpt2_end(const Scanner& sc, std::size_t i) {
  const std::size_t n = sc.size();
  if (sc.byte(i) == '\'') {
    if (const std::size_t k = sc.contraction(i, false)) return i + k;
  }
  Ch c = sc.at(i);
  std::size_t j = i;
  if (c.cp == ' ' && i + 1 < n) {  // the optional leading space of alternatives 2-4
    const Ch d = sc.at(i + 1);
    if (!(d.flags & kS)) c = d, j = i + 1;
  }
  if (c.flags & kL) return sc.run_any(j, kL);
  if (c.flags & kN) return sc.run_any(j, kN);
  if (!(c.flags & kS)) return sc.run_other(j);
  const auto r = sc.space_run(i);
  if (r.end == n || r.chars == 1) return r.end;  // \s+ (at the end, or a single space before \S)
  return r.last;                                 // \s+(?!\S) gives back the last space
}

// '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
// |\s+$|\s*[\r\n]|\s+(?!\S)|\s
std::size_t cl100k_end(const Scanner& sc, std::size_t i) {
  const std::size_t n = sc.size();
  if (sc.byte(i) == '\'') {
    if (const std::size_t k = sc.contraction(i, true)) return i + k;
  }
  const Ch c = sc.at(i);
  if (c.flags & kL) return sc.run_any(i, kL);
  if (!(c.flags & kN) && c.cp != '\r' && c.cp != '\n') {  // optional prefix before letters
    const std::size_t j = i + c.len;
    if (j < n && (sc.at(j).flags & kL)) return sc.run_any(j, kL);
  }
  if (c.flags & kN) return sc.run_any_upto(i, kN, 3);
  std::size_t j = std::string_view::npos;
  if (c.cp == ' ' && sc.is_other_at(i + 1))
    j = sc.run_other(i + 1);
  else if (!(c.flags & kOtherMask))
    j = sc.run_other(i);
  if (j != std::string_view::npos) {
    while (j < n && (sc.byte(j) == '\r' || sc.byte(j) == '\n')) ++j;
    return j;
  }
  const auto r = sc.space_run(i);
  if (r.end == n) return r.end;                                       // \s+$
  if (r.last_crlf != std::string_view::npos) return r.last_crlf + 1;  // \s*[\r\n]
  if (r.chars > 1) return r.last;                                     // \s+(?!\S)
  return r.end;                                                       // \s
}

// o200k's letter alternatives from `s`; 0 when neither matches.
//   A: [U]*[W]+(?i:'s|...)?     B: [U]+[W]*(?i:'s|...)?
std::size_t o200k_letters_a(const Scanner& sc, std::size_t s) {
  const std::size_t n = sc.size();
  std::size_t q = s, last_uw = std::string_view::npos, last_uw_end = 0;
  while (q < n) {  // [U]* greedily
    const Ch c = sc.at(q);
    if (!(c.flags & kU)) break;
    if (c.flags & kW) last_uw = q, last_uw_end = q + c.len;
    q += c.len;
  }
  std::size_t end;
  if (q < n && (sc.at(q).flags & kW))
    end = sc.run_any(q, kW);  // [W]+ right after the U run
  else if (last_uw != std::string_view::npos)
    end = last_uw_end;  // give back the last U∩W char
  else
    return 0;
  return end + sc.contraction(end, true);
}
std::size_t o200k_letters_b(const Scanner& sc, std::size_t s) {
  const std::size_t q = sc.run_any(s, kU);
  if (q == s) return 0;
  const std::size_t end = sc.run_any(q, kW);
  return end + sc.contraction(end, true);
}

std::size_t o200k_end(const Scanner& sc, std::size_t i) {
  const std::size_t n = sc.size();
  const Ch c = sc.at(i);
  const bool prefix = !(c.flags & (kL | kN)) && c.cp != '\r' && c.cp != '\n';
  if (prefix && i + c.len < n)
    if (const std::size_t e = o200k_letters_a(sc, i + c.len)) return e;
  if (const std::size_t e = o200k_letters_a(sc, i)) return e;
  if (prefix && i + c.len < n)
    if (const std::size_t e = o200k_letters_b(sc, i + c.len)) return e;
  if (const std::size_t e = o200k_letters_b(sc, i)) return e;
  if (c.flags & kN) return sc.run_any_upto(i, kN, 3);
  std::size_t j = std::string_view::npos;
  if (c.cp == ' ' && sc.is_other_at(i + 1))
    j = sc.run_other(i + 1);
  else if (!(c.flags & kOtherMask))
    j = sc.run_other(i);
  if (j != std::string_view::npos) {
    while (j < n && (sc.byte(j) == '\r' || sc.byte(j) == '\n' || sc.byte(j) == '/')) ++j;
    return j;
  }
  const auto r = sc.space_run(i);
  if (r.last_crlf != std::string_view::npos) return r.last_crlf + 1;  // \s*[\r\n]+
  if (r.end == n || r.chars == 1) return r.end;                       // \s+(?!\S) at the end, \s+
  return r.last;                                                      // \s+(?!\S)
}

}  // namespace

std::size_t pretoken_end(PreTokenizer kind, std::string_view text, std::size_t pos) {
  const Scanner sc(text);
  switch (kind) {
    case PreTokenizer::gpt2: return gpt2_end(sc, pos);
    case PreTokenizer::cl100k: return cl100k_end(sc, pos);
    case PreTokenizer::o200k: return o200k_end(sc, pos);
  }
  return text.size();
}

std::vector<std::string_view> pretokenize(PreTokenizer kind, std::string_view text) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t e = pretoken_end(kind, text, i);
    pieces.push_back(text.substr(i, e - i));
    i = e;
  }
  return pieces;
}

const char* pretokenizer_regex(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::gpt2:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case PreTokenizer::cl100k:
      return R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]|\s+(?!\S)|\s)";
    case PreTokenizer::o200k:
      return R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  }
  return "";
}

const char* pretokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::gpt2: return "gpt2";
    case PreTokenizer::cl100k: return "cl100k";
    case PreTokenizer::o200k: return "o200k";
  }
  return "";
}

}  // namespace strata::data
