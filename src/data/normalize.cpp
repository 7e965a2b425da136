// UTF-8 repair and text normalisation (normalize.hpp).
#include "strata/data/normalize.hpp"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include "strata/core/error.hpp"

namespace strata::data {

namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence at s[i..n), or 0 when it is invalid; `bad` receives the
// length of the maximal invalid subpart to replace.
std::size_t valid_sequence(const unsigned char* s, std::size_t i, std::size_t n, std::size_t& bad) {
  const unsigned char c = s[i];
  bad = 1;
  if (c < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c == 0xE0)
    len = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC)
    len = 3;
  else if (c == 0xED)
    len = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xEE && c <= 0xEF)
    len = 3;
  else if (c == 0xF0)
    len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3)
    len = 4;
  else if (c == 0xF4)
    len = 4, hi = 0x8F;  // <= U+10FFFF
  else
    return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= n) return 0;
    const unsigned char b = s[i + k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    bad = k + 1;  // the prefix so far is a valid start: replace it as one unit
  }
  return len;
}

// Appends the code point at s[i] (valid UTF-8 of `len` bytes) decoded.
char32_t decode(const unsigned char* s, std::size_t len) {
  if (len == 1) return s[0];
  if (len == 2) return char32_t(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
  if (len == 3) return char32_t(s[0] & 0x0F) << 12 | char32_t(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  return char32_t(s[0] & 0x07) << 18 | char32_t(s[1] & 0x3F) << 12 | char32_t(s[2] & 0x3F) << 6 |
         (s[3] & 0x3F);
}

bool is_unicode_space(char32_t c) {
  return c == 0xA0 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000 ||
         c == 0x1680;
}
bool is_removed(char32_t c) {
  if (c == '\t' || c == '\n') return false;
  if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) return true;  // C0 / C1 controls
  return (c >= 0x200B && c <= 0x200D) || c == 0x2060 || c == 0xFEFF;
}

const icu::Normalizer2& nfc() {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(err);
  if (U_FAILURE(err) || !n) throw make_error("cannot load ICU's NFC normaliser: ", u_errorName(err));
  return *n;
}

}  // namespace

std::size_t repair_utf8(std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  // Fast path: scan; most text is valid.
  std::size_t i = 0, bad = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = valid_sequence(s, i, n, bad);
    if (len == 0) break;
    i += len;
  }
  if (i == n) return 0;
  std::string out;
  out.reserve(n + 16);
  out.append(text, 0, i);
  std::size_t replaced = 0;
  while (i < n) {
    const std::size_t len = valid_sequence(s, i, n, bad);
    if (len > 0) {
      out.append(text, i, len);
      i += len;
    } else {
      out += kReplacement;
      ++replaced;
      i += bad;
    }
  }
  text.swap(out);
  return replaced;
}

bool normalize_text(std::string& text) {
  bool changed = false;
  // 1. NFC (only when the text is not already in NFC: the common case costs one scan; ASCII,
  // which is always NFC, costs a plain byte scan and no ICU call).
  bool ascii = true;
  for (const char ch : text) ascii &= static_cast<unsigned char>(ch) < 0x80;
  if (!ascii) {
    const icu::Normalizer2& n = nfc();
    UErrorCode err = U_ZERO_ERROR;
    const icu::StringPiece piece(text.data(), std::int32_t(text.size()));
    if (!n.isNormalizedUTF8(piece, err) && U_SUCCESS(err)) {
      std::string out;
      icu::StringByteSink<std::string> sink(&out, std::int32_t(text.size()));
      n.normalizeUTF8(0, piece, sink, nullptr, err);
      if (U_FAILURE(err)) throw make_error("NFC normalisation failed: ", u_errorName(err));
      if (out != text) changed = true;
      text.swap(out);
    }
  }
  // 2. Characters and whitespace, one pass into `out`.
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t pending_newlines = 0;  // newlines seen but not yet written
  std::size_t line_start = 0;        // in `out`
  auto end_line = [&] {              // strip trailing spaces/tabs of the current line
    while (out.size() > line_start && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  };
  for (std::size_t i = 0; i < n;) {
    // ASCII other than controls and \r: copied as it is (the common case, no decoding).
    if (s[i] >= 0x20 && s[i] < 0x7F) {
      if (pending_newlines > 0) {
        if (!out.empty()) out.append(std::min<std::size_t>(pending_newlines, 2), '\n');
        pending_newlines = 0;
        line_start = out.size();
      }
      std::size_t e = i + 1;
      while (e < n && s[e] >= 0x20 && s[e] < 0x7F) ++e;
      out.append(text, i, e - i);
      i = e;
      continue;
    }
    std::size_t bad = 0;
    std::size_t len = valid_sequence(s, i, n, bad);
    if (len == 0) len = 1;  // callers repair first; be safe
    char32_t c = decode(s + i, len);
    const std::size_t at = i;
    i += len;
    if (c == '\r') {
      if (i < n && s[i] == '\n') ++i;
      c = '\n';
    }
    if (c == '\n') {
      end_line();
      ++pending_newlines;
      line_start = out.size();
      continue;
    }
    if (is_removed(c)) continue;
    if (pending_newlines > 0) {
      if (!out.empty()) out.append(std::min<std::size_t>(pending_newlines, 2), '\n');
      pending_newlines = 0;
      line_start = out.size();
    }
    if (is_unicode_space(c))
      out.push_back(' ');
    else
      out.append(text, at, len);
  }
  end_line();
  // Lines that held only spaces are empty now: collapse newline runs again (at most one blank
  // line) and drop leading/trailing newlines.
  {
    std::size_t w = 0, run = 0;
    for (std::size_t r = 0; r < out.size(); ++r) {
      if (out[r] == '\n') {
        if (w == 0 || ++run > 2) continue;
      } else {
        run = 0;
      }
      out[w++] = out[r];
    }
    out.resize(w);
    while (!out.empty() && out.back() == '\n') out.pop_back();
  }
  // A document made of spaces only is empty.
  bool blank = true;
  for (char ch : out)
    if (ch != ' ' && ch != '\t' && ch != '\n') {
      blank = false;
      break;
    }
  if (blank) out.clear();
  if (out != text) changed = true;
  text.swap(out);
  return changed;
}

}  // namespace strata::data
