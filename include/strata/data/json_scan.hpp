// A fast, strict reader for the two JSON shapes that `strata prepare` and the tokenizer loaders
// meet at volume: a JSONL line holding one object (prepare reads its text field) and a flat
// object of string -> integer (GPT-2's vocab.json). A full JSON DOM (nlohmann) costs a map
// node per key and a string per value; these scan the bytes once.
//
// Both accept a strict subset of JSON (RFC 8259) and decide nothing else: whenever the input
// leaves the subset — malformed JSON, invalid UTF-8, a control character or a lone surrogate in
// a string, a number with an exponent, nesting deeper than 64, a byte-order mark, a duplicated
// key where it matters — they return `fallback`, and the caller parses the input with nlohmann
// as before, so every error message and every edge case stays nlohmann's. Where they answer,
// they answer what nlohmann would (tests/unit/data/test_json_scan.cpp compares them on
// generated and mutated lines).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace strata::data {

enum class JsonScan {
  found,     // the object is valid and its field is a string (decoded into `out`)
  fallback,  // anything else: parse with nlohmann
};

// `line` is one JSON object (surrounding whitespace allowed); `out` receives the decoded
// string value of `field` (the last occurrence, as nlohmann keeps the last of duplicate keys).
JsonScan json_string_field(std::string_view line, std::string_view field, std::string& out);

// `text` is one JSON object whose values are all non-negative integers below 2^31 written
// without sign, fraction or exponent. Calls visit(decoded key, value) in file order; visit
// returns false to stop (then the result is fallback, too).
JsonScan json_flat_int_object(std::string_view text,
                              const std::function<bool(std::string_view key, std::uint32_t value)>& visit);

}  // namespace strata::data
