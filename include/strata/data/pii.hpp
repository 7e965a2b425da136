// PII scrubbing: e-mail addresses, IPv4 and IPv6 addresses and phone numbers are replaced by
// placeholder tokens, as in BigScience's ROOTS pipeline (Laurençon et al. 2022, sec. 3.3) and
// StarCoder's (Li et al. 2023, sec. 4). Hand-written scanners (no regex engine), one pass each.
//
//   e-mail   local@domain.tld: local part [A-Za-z0-9._%+-], domain labels [A-Za-z0-9-] joined
//            by dots, a top-level label of 2+ letters                        -> <EMAIL>
//   IPv4     four decimal octets 0..255 joined by dots, not part of a longer dotted number
//                                                                             -> <IP_ADDRESS>
//   IPv6     hex groups of 1..4 digits joined by ":", eight groups, or fewer with one "::";
//            at least one group of 3+ digits (so "a::b" in C++ code is left alone) -> <IP_ADDRESS>
//   phone    10..15 digits in groups joined by " ", "-", "." or "(...)", that start with "+"
//            or "(", or have at least two "-" or "." separators (555-123-4567,
//            +44 20 7946 0958, (555) 123-4567)                              -> <PHONE>
// Known misses and false positives are listed in docs/data-pipeline.md.
#pragma once
#include <cstdint>
#include <string>

namespace strata::data {

inline constexpr const char* kEmailPlaceholder = "<EMAIL>";
inline constexpr const char* kIpPlaceholder = "<IP_ADDRESS>";
inline constexpr const char* kPhonePlaceholder = "<PHONE>";

struct PiiCounts {
  std::uint64_t emails = 0, ipv4 = 0, ipv6 = 0, phones = 0;
  std::uint64_t total() const { return emails + ipv4 + ipv6 + phones; }
};

// Replaces every match in place and returns how many of each kind were replaced.
PiiCounts scrub_pii(std::string& text);

}  // namespace strata::data
