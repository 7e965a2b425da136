// The strict JSON scanner (json_scan.hpp) answers only what nlohmann would answer: on fixed
// edge cases and on thousands of generated and byte-mutated lines, whenever it says "found" the
// line is a valid object whose field nlohmann reads as the same string; it falls back on the
// rest, and it does find the ordinary lines.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "strata/data/json_scan.hpp"

using namespace strata::data;

namespace {

// nlohmann's reading of `line`, as prepare uses it: the field's string, or nullopt.
std::optional<std::string> reference(const std::string& line, const std::string& field) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains(field) || !j[field].is_string()) return std::nullopt;
  return j[field].get<std::string>();
}

// Fails the test when the scanner claims a line nlohmann reads differently; true when found.
bool agrees(const std::string& line, const std::string& field = "text") {
  std::string out;
  const bool found = json_string_field(line, field, out) == JsonScan::found;
  if (found) {
    const auto ref = reference(line, field);
    EXPECT_TRUE(ref.has_value()) << "scanner found a field nlohmann does not: " << line;
    if (ref) {
      EXPECT_EQ(out, *ref) << line;
    }
  }
  return found;
}

// The inside of a random JSON string: plain text, escapes, raw UTF-8.
std::string random_string_body(std::mt19937_64& rng) {
  const char* parts[] = {"plain words",
                         "tab\\there",
                         "quote \\\" and \\\\ slash \\/",
                         "\\u00e9t\\u00E9",
                         "caf\xC3\xA9 \xE2\x80\xA6 \xF0\x9F\x98\x80",
                         "\\ud83d\\ude00 emoji",
                         "line\\nbreak\\r\\n",
                         "\\b\\f",
                         "",
                         "\\u0000nul"};
  std::string s;
  for (int k = 0, n = int(rng() % 4); k < n; ++k) s += parts[rng() % 10];
  return s;
}

// A random JSON value of the kinds crawl metadata holds.
std::string random_value(std::mt19937_64& rng, int depth) {
  switch (rng() % (depth > 2 ? 5 : 7)) {
    case 0: return "\"" + random_string_body(rng) + "\"";
    case 1: return std::to_string(std::int64_t(rng() % 2000000) - 1000000);
    case 2: return std::to_string(rng() % 1000) + "." + std::to_string(rng() % 1000);
    case 3: return (rng() % 2) ? "true" : "false";
    case 4: return "null";
    case 5: {
      std::string s = "[";
      for (int k = 0, n = int(rng() % 4); k < n; ++k) s += (k ? ", " : "") + random_value(rng, depth + 1);
      return s + "]";
    }
    default: {
      std::string s = "{";
      for (int k = 0, n = int(rng() % 4); k < n; ++k)
        s += (k ? "," : "") + std::string("\"k") + std::to_string(k) + "\": " + random_value(rng, depth + 1);
      return s + "}";
    }
  }
}

std::string random_line(std::mt19937_64& rng) {
  std::string s = (rng() % 4 == 0) ? " {" : "{";
  const int n = 1 + int(rng() % 4), text_at = int(rng() % std::uint64_t(n));
  for (int k = 0; k < n; ++k) {
    s += k ? (rng() % 2 ? ", " : ",") : "";
    if (k == text_at && rng() % 8 != 0)
      s += "\"text\": \"" + random_string_body(rng) + "\"";
    else if (k == text_at)
      s += "\"text\": " + random_value(rng, 1);  // any kind of value
    else
      s += "\"meta" + std::to_string(k) + "\":" + random_value(rng, 1);
  }
  return s + (rng() % 4 == 0 ? "}  " : "}");
}

}  // namespace

TEST(JsonScan, FindsOrdinaryLinesAndDecodesEscapesLikeNlohmann) {
  EXPECT_TRUE(agrees(R"({"text": "hello"})"));
  EXPECT_TRUE(agrees(
      R"(  {"id": 7, "text": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "meta": {"url": "x", "n": [1, 2.5, true, null]}} )"));
  EXPECT_TRUE(agrees("{\"text\": \"caf\xC3\xA9\"}"));
  EXPECT_TRUE(agrees(R"({"text": "a\u0000b"})"));
  EXPECT_TRUE(agrees(R"({"text": "first", "text": "second"})"));  // nlohmann keeps the last
  std::string out;
  ASSERT_EQ(json_string_field(R"({"text": "first", "text": "second"})", "text", out), JsonScan::found);
  EXPECT_EQ(out, "second");
  EXPECT_TRUE(agrees(R"({"body": "x"})", "body"));
}

TEST(JsonScan, FallsBackOnEverythingOutsideItsSubset) {
  for (const std::string line : {
           R"({"text": 5})",               // not a string
           R"({"text": "a", "text": 5})",  // the last one is not a string
           R"({"other": "a"})",            // no field
           R"({})",
           R"([])",
           R"("text")",
           "",                               // not an object
           R"({"text": "a"} x)",             // trailing garbage
           R"({"text": "a",})",              // trailing comma
           R"({"text": "a\x"})",             // bad escape
           R"({"text": "\ud83d"})",          // lone high surrogate
           R"({"text": "\ude00"})",          // lone low surrogate
           R"({"text": "a", "n": 1e999})",   // exponent (nlohmann rejects the overflow)
           R"({"text": "a", "n": 1e3})",     // exponent (fallback, though valid)
           R"({"text": "a", "n": 01})",      // leading zero
           R"({"text": "a", "n": tru})",     // bad literal
           "{\"text\": \"a\tb\"}",           // raw control character
           "{\"text\": \"\xC3\"}",           // truncated UTF-8
           "{\"text\": \"\xED\xA0\x80\"}",   // an encoded surrogate
           "{\"text\": \"\xC0\xAF\"}",       // overlong
           "\xEF\xBB\xBF{\"text\": \"a\"}",  // byte-order mark (nlohmann skips it: fine, it decides)
       }) {
    std::string out;
    EXPECT_EQ(json_string_field(line, "text", out), JsonScan::fallback) << line;
  }
  std::string deep = R"({"text": "a", "n": )";
  for (int k = 0; k < 100; ++k) deep += "[";
  for (int k = 0; k < 100; ++k) deep += "]";
  std::string out;
  EXPECT_EQ(json_string_field(deep + "}", "text", out), JsonScan::fallback);
}

TEST(JsonScan, GeneratedAndMutatedLinesNeverDisagreeWithNlohmann) {
  std::mt19937_64 rng(20);
  int found = 0, valid = 0, mutated_found = 0;
  const char alphabet[] = "{}[]\":,\\ u0123456789abcdefe.-+tnlrsx\x80\xC3\xA9\xED\xF0";
  for (int i = 0; i < 20000; ++i) {
    const std::string line = random_line(rng);
    const bool ref = reference(line, "text").has_value();
    valid += ref;
    found += agrees(line);
    for (int m = 0; m < 4; ++m) {  // one to three byte edits
      std::string bad = line;
      for (int e = 0, n = 1 + int(rng() % 3); e < n && !bad.empty(); ++e) {
        const std::size_t at = rng() % bad.size();
        const char c = alphabet[rng() % (sizeof alphabet - 1)];
        switch (rng() % 3) {
          case 0: bad[at] = c; break;
          case 1: bad.insert(bad.begin() + std::ptrdiff_t(at), c); break;
          default: bad.erase(at, 1);
        }
      }
      mutated_found += agrees(bad);
    }
  }
  // The scanner must take the bulk of the valid lines (else prepare gains nothing).
  EXPECT_GT(found, valid * 9 / 10) << found << " of " << valid << " valid lines";
  EXPECT_GT(mutated_found, 0);
  std::printf("valid %d, found %d; mutated lines found %d of %d\n", valid, found, mutated_found, 4 * 20000);
}

TEST(JsonScan, FlatIntObjectVisitsWhatNlohmannReads) {
  const std::string text = R"({"a": 0, "\u0120the": 262, "b\"c": 7,
    "\u00e9": 2147483647})";
  std::map<std::string, std::uint32_t> got;
  ASSERT_EQ(json_flat_int_object(
                text, [&](std::string_view k, std::uint32_t v) { return got.emplace(k, v).second; }),
            JsonScan::found);
  std::map<std::string, std::uint32_t> ref;
  const nlohmann::json j = nlohmann::json::parse(text);
  for (const auto& [k, v] : j.items()) ref[k] = v.get<std::uint32_t>();
  EXPECT_EQ(got, ref);
  for (const std::string bad : {R"({"a": -1})", R"({"a": 1.0})", R"({"a": 1e2})", R"({"a": 2147483648})",
                                R"({"a": "1"})", R"({"a": 1,})", R"({"a": 1} x)", R"({"a": 01})"}) {
    EXPECT_EQ(json_flat_int_object(bad, [](std::string_view, std::uint32_t) { return true; }),
              JsonScan::fallback)
        << bad;
  }
  EXPECT_EQ(json_flat_int_object(R"({"a": 1})", [](std::string_view, std::uint32_t) { return false; }),
            JsonScan::fallback);
}
