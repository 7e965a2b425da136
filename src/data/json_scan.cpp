// The strict JSON subset reader (json_scan.hpp).
#include "strata/data/json_scan.hpp"

#include <cstring>

namespace strata::data {
namespace {

constexpr int kMaxDepth = 64;

// A cursor over the input; every method returns false when the input leaves the subset.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  bool at_end() const { return p_ == end_; }
  char peek() const { return p_ < end_ ? *p_ : '\0'; }
  bool eat(char c) {
    if (p_ < end_ && *p_ == c) return ++p_, true;
    return false;
  }
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  // A string at the cursor (opening quote included), decoded into `out` (when not null).
  bool string(std::string* out) {
    if (!eat('"')) return false;
    if (out) out->clear();
    for (;;) {
      // A run of plain bytes: printable ASCII other than '"' and '\\'.
      const char* run = p_;
      while (p_ < end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++p_;
      }
      if (out && p_ > run) out->append(run, std::size_t(p_ - run));
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') return ++p_, true;
      if (c < 0x20) return false;  // nlohmann: control characters must be escaped
      if (c >= 0x80) {
        const std::size_t len = utf8_length();
        if (len == 0) return false;
        if (out) out->append(p_, len);
        p_ += len;
        continue;
      }
      // An escape.
      ++p_;
      if (p_ == end_) return false;
      const char e = *p_++;
      char plain = 0;
      switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate first
          if (cp >= 0xD800 && cp <= 0xDBFF) {              // a high one: its low one follows
            std::uint32_t lo = 0;
            if (!eat('\\') || !eat('u') || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          if (out) append_utf8(*out, cp);
          continue;
        }
        default: return false;
      }
      if (out) out->push_back(plain);
    }
  }

  // A number of the subset: -?(0|[1-9][0-9]*)(.[0-9]+)?, at most 100 characters (no exponent:
  // nothing that could overflow a double, which nlohmann rejects).
  bool number() {
    const char* start = p_;
    eat('-');
    if (eat('0')) {
    } else if (p_ < end_ && *p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      return false;
    }
    if (eat('.')) {
      const char* digits = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == digits) return false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) return false;
    return p_ - start <= 100;
  }

  // An unsigned integer without sign, fraction or exponent, below 2^31.
  bool small_uint(std::uint32_t& v) {
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    if (*p_ == '0') {
      ++p_;
      v = 0;
    } else {
      std::uint64_t x = 0;
      int digits = 0;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        x = x * 10 + std::uint64_t(*p_++ - '0');
        if (++digits > 10) return false;
      }
      if (x >= (1ull << 31)) return false;
      v = std::uint32_t(x);
    }
    // Not followed by more of a number (a fraction, an exponent).
    return !(p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E' || (*p_ >= '0' && *p_ <= '9')));
  }

  bool literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (std::size_t(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  // Any value of the subset, skipped.
  bool skip_value(int depth) {
    if (depth > kMaxDepth) return false;
    switch (peek()) {
      case '"': return string(nullptr);
      case '{': {
        ++p_;
        skip_ws();
        if (eat('}')) return true;
        for (;;) {
          skip_ws();
          if (!string(nullptr)) return false;
          skip_ws();
          if (!eat(':')) return false;
          skip_ws();
          if (!skip_value(depth + 1)) return false;
          skip_ws();
          if (eat('}')) return true;
          if (!eat(',')) return false;
        }
      }
      case '[': {
        ++p_;
        skip_ws();
        if (eat(']')) return true;
        for (;;) {
          skip_ws();
          if (!skip_value(depth + 1)) return false;
          skip_ws();
          if (eat(']')) return true;
          if (!eat(',')) return false;
        }
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

 private:
  // Length of the valid UTF-8 sequence at the cursor (RFC 3629: no overlong forms, no
  // surrogates, at most U+10FFFF), 0 when invalid.
  std::size_t utf8_length() const {
    const auto* s = reinterpret_cast<const unsigned char*>(p_);
    const std::size_t avail = std::size_t(end_ - p_);
    const unsigned char c = s[0];
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC)
      len = 3;
    else if (c == 0xED)
      len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF)
      len = 3;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;
    else
      return 0;
    if (avail < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (std::size_t k = 2; k < len; ++k)
      if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return len;
  }
  bool hex4(std::uint32_t& v) {
    if (end_ - p_ < 4) return false;
    v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = *p_++;
      std::uint32_t d;
      if (c >= '0' && c <= '9')
        d = std::uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = std::uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = std::uint32_t(c - 'A' + 10);
      else
        return false;
      v = v << 4 | d;
    }
    return true;
  }
  static void append_utf8(std::string& s, std::uint32_t cp) {
    if (cp < 0x80) {
      s.push_back(char(cp));
    } else if (cp < 0x800) {
      s.push_back(char(0xC0 | (cp >> 6)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(char(0xE0 | (cp >> 12)));
      s.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(char(0xF0 | (cp >> 18)));
      s.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

JsonScan json_string_field(std::string_view line, std::string_view field, std::string& out) {
  Cursor c(line);
  c.skip_ws();
  if (!c.eat('{')) return JsonScan::fallback;  // also a byte-order mark: nlohmann skips it
  thread_local std::string key;
  bool found = false;
  c.skip_ws();
  if (c.eat('}')) return JsonScan::fallback;  // {}: no field
  for (;;) {
    c.skip_ws();
    if (!c.string(&key)) return JsonScan::fallback;
    c.skip_ws();
    if (!c.eat(':')) return JsonScan::fallback;
    c.skip_ws();
    if (key == field) {
      // nlohmann keeps the last of duplicate keys: a later value replaces this one.
      if (c.peek() == '"') {
        if (!c.string(&out)) return JsonScan::fallback;
        found = true;
      } else {
        if (!c.skip_value(1)) return JsonScan::fallback;
        found = false;  // not a string (or a later string replaces it)
      }
    } else if (!c.skip_value(1)) {
      return JsonScan::fallback;
    }
    c.skip_ws();
    if (c.eat('}')) break;
    if (!c.eat(',')) return JsonScan::fallback;
  }
  c.skip_ws();
  if (!c.at_end() || !found) return JsonScan::fallback;
  return JsonScan::found;
}

JsonScan json_flat_int_object(std::string_view text,
                              const std::function<bool(std::string_view key, std::uint32_t value)>& visit) {
  Cursor c(text);
  c.skip_ws();
  if (!c.eat('{')) return JsonScan::fallback;
  std::string key;
  c.skip_ws();
  if (c.eat('}')) {
    c.skip_ws();
    return c.at_end() ? JsonScan::found : JsonScan::fallback;
  }
  for (;;) {
    c.skip_ws();
    if (!c.string(&key)) return JsonScan::fallback;
    c.skip_ws();
    if (!c.eat(':')) return JsonScan::fallback;
    c.skip_ws();
    std::uint32_t v = 0;
    if (!c.small_uint(v) || !visit(key, v)) return JsonScan::fallback;
    c.skip_ws();
    if (c.eat('}')) break;
    if (!c.eat(',')) return JsonScan::fallback;
  }
  c.skip_ws();
  return c.at_end() ? JsonScan::found : JsonScan::fallback;
}

}  // namespace strata::data
