// PII scanners (pii.hpp). Each finds spans [begin, end) in the text; the spans are then
// replaced in one pass, left to right, earlier kinds winning overlaps (e-mail before IPs
// before phones).
#include "strata/data/pii.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

namespace strata::data {

namespace {

enum class Kind { email, ipv4, ipv6, phone };

struct Span {
  std::size_t begin, end;
  Kind kind;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool is_local_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool is_domain_char(char c) { return is_alnum(c) || c == '.' || c == '-'; }

void find_emails(std::string_view s, std::vector<Span>& out) {
  for (std::size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    std::size_t b = at;
    while (b > 0 && is_local_char(s[b - 1])) --b;
    while (b < at && (s[b] == '.' || s[b] == '-')) ++b;
    if (b == at) continue;
    std::size_t e = at + 1;
    while (e < s.size() && is_domain_char(s[e])) ++e;
    while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-')) --e;
    const std::string_view domain = s.substr(at + 1, e - at - 1);
    const std::size_t dot = domain.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || domain.find("..") != std::string_view::npos) continue;
    const std::string_view tld = domain.substr(dot + 1);
    if (tld.size() < 2 || !std::all_of(tld.begin(), tld.end(), is_alpha)) continue;
    out.push_back({b, e, Kind::email});
  }
}

// One decimal octet 0..255 at s[i]; returns its end or npos.
std::size_t octet(std::string_view s, std::size_t i) {
  std::size_t e = i;
  int v = 0;
  while (e < s.size() && is_digit(s[e]) && e - i < 3) v = v * 10 + (s[e++] - '0');
  if (e == i || v > 255 || (e < s.size() && is_digit(s[e]))) return std::string_view::npos;
  return e;
}

void find_ipv4(std::string_view s, std::vector<Span>& out) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!is_digit(s[i]) || (i > 0 && (is_alnum(s[i - 1]) || s[i - 1] == '.'))) continue;
    std::size_t e = i;
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      if (k > 0) {
        if (e >= s.size() || s[e] != '.') {
          ok = false;
          break;
        }
        ++e;
      }
      e = octet(s, e);
      ok = e != std::string_view::npos;
    }
    if (!ok) continue;
    if (e < s.size() && (is_alnum(s[e]) || (s[e] == '.' && e + 1 < s.size() && is_digit(s[e + 1])))) continue;
    out.push_back({i, e, Kind::ipv4});
    i = e;
  }
}

// A candidate is a maximal run of hex digits and ':' that does not follow a letter or digit;
// only runs with a ':' can be addresses (at least two groups), so the scan jumps from colon to
// colon instead of starting at every hex letter of the text.
void find_ipv6(std::string_view s, std::vector<Span>& out) {
  for (std::size_t colon = s.find(':'); colon != std::string_view::npos;) {
    std::size_t i = colon;
    while (i > 0 && (is_hex(s[i - 1]) || s[i - 1] == ':')) --i;
    std::size_t e = colon;
    while (e < s.size() && (is_hex(s[e]) || s[e] == ':')) ++e;
    colon = s.find(':', e);  // the next run
    if (i > 0 && is_alnum(s[i - 1])) continue;
    if (e < s.size() && (is_alnum(s[e]) || s[e] == '_')) continue;
    std::string_view cand = s.substr(i, e - i);
    // A trailing single ":" is punctuation ("address fe80::1:"), not part of the address.
    if (cand.size() >= 2 && cand.back() == ':' && cand[cand.size() - 2] != ':') cand.remove_suffix(1);
    int groups = 0, double_colons = 0, long_group = 0;
    bool ok = cand.find(":::") == std::string_view::npos;
    for (std::size_t p = 0; p < cand.size() && ok;) {
      if (cand[p] == ':') {
        if (p + 1 < cand.size() && cand[p + 1] == ':')
          ++double_colons, p += 2;
        else if (p == 0 || p + 1 == cand.size())
          ok = false;  // single ':' at an end
        else
          ++p;
        continue;
      }
      std::size_t q = p;
      while (q < cand.size() && is_hex(cand[q])) ++q;
      if (q - p > 4) ok = false;
      long_group += q - p >= 3;
      ++groups;
      p = q;
    }
    ok = ok && double_colons <= 1 && groups >= 2 && long_group >= 1 &&
         (double_colons == 1 ? groups < 8 : groups == 8);
    if (ok) out.push_back({i, i + cand.size(), Kind::ipv6});
  }
}

void find_phones(std::string_view s, std::vector<Span>& out) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!(is_digit(c) || c == '+' || c == '(')) continue;
    if (i > 0 &&
        (is_alnum(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '+' || s[i - 1] == '/'))
      continue;
    std::size_t e = i, last_digit_end = i;
    int digits = 0, seps = 0, groups = 0;
    bool plus = c == '+', paren = false, open = false, ok = true;
    if (plus) ++e;
    char prev = plus ? '+' : '\0';
    while (e < s.size() && ok) {
      const char ch = s[e];
      if (is_digit(ch)) {
        if (!is_digit(prev)) ++groups;
        ++digits;
        last_digit_end = e + 1;
      } else if (ch == '(') {
        if (open || paren || is_digit(prev)) break;
        open = paren = true;
      } else if (ch == ')') {
        if (!open || !is_digit(prev)) break;
        open = false;
      } else if (ch == '-' || ch == '.') {
        if (!is_digit(prev) && prev != ')') break;
        ++seps;
      } else if (ch == ' ') {
        if (!is_digit(prev) && prev != ')') break;
      } else {
        break;
      }
      prev = ch;
      ++e;
    }
    if (open) continue;
    e = last_digit_end;
    if (e < s.size() &&
        (is_alnum(s[e]) || (e + 1 < s.size() && (s[e] == '.' || s[e] == '-') && is_digit(s[e + 1]))))
      continue;
    const bool shaped = plus || paren || seps >= 2;
    if (digits >= 10 && digits <= 15 && groups >= 2 && shaped) {
      out.push_back({i, e, Kind::phone});
      i = e;
    }
  }
}

}  // namespace

PiiCounts scrub_pii(std::string& text) {
  // Cheap pre-checks: no '@' means no e-mail; fewer than 7 digits means nothing else.
  std::vector<Span> spans;
  const std::string_view s = text;
  if (s.find('@') != std::string_view::npos) find_emails(s, spans);
  std::size_t digits = 0;
  for (char c : s) digits += is_digit(c);
  if (digits >= 4) {
    find_ipv4(s, spans);
    find_ipv6(s, spans);
    if (digits >= 10) find_phones(s, spans);
  } else if (s.find("::") != std::string_view::npos) {
    find_ipv6(s, spans);
  }
  PiiCounts counts;
  if (spans.empty()) return counts;
  std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : int(a.kind) < int(b.kind);
  });
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (const Span& sp : spans) {
    if (sp.begin < pos) continue;  // overlaps an earlier replacement
    out.append(text, pos, sp.begin - pos);
    switch (sp.kind) {
      case Kind::email: out += kEmailPlaceholder, ++counts.emails; break;
      case Kind::ipv4: out += kIpPlaceholder, ++counts.ipv4; break;
      case Kind::ipv6: out += kIpPlaceholder, ++counts.ipv6; break;
      case Kind::phone: out += kPhonePlaceholder, ++counts.phones; break;
    }
    pos = sp.end;
  }
  out.append(text, pos, std::string::npos);
  text.swap(out);
  return counts;
}

}  // namespace strata::data
