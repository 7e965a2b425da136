// Text clean-up before filtering and deduplication: UTF-8 repair, Unicode NFC and whitespace
// normalisation. Both are pure functions of the text, so every rank makes the same decision.
#pragma once
#include <cstddef>
#include <string>

namespace strata::data {

// Replaces every invalid UTF-8 sequence (bad lead or continuation bytes, overlong forms,
// surrogates, code points above U+10FFFF, truncated sequences) by U+FFFD, one per maximal
// invalid subpart as Unicode 15 sec. 3.9 recommends. Returns the number of replacements.
std::size_t repair_utf8(std::string& text);

// Normalises valid UTF-8 in place and returns whether anything changed:
//   - Unicode NFC (canonical composition, via ICU), so "e" + U+0301 and U+00E9 hash alike;
//   - "\r\n" and lone "\r" become "\n";
//   - no-break and other Unicode spaces (U+00A0, U+2000..U+200A, U+202F, U+205F, U+3000)
//     become " "; zero-width characters (U+200B..U+200D, U+2060, U+FEFF) and C0/C1 control
//     characters other than "\t" and "\n" are removed;
//   - trailing spaces and tabs at the end of each line are removed;
//   - more than one blank line in a row becomes one; leading and trailing blank lines are
//     removed.
// Indentation and spaces inside a line are kept (code depends on them).
bool normalize_text(std::string& text);

}  // namespace strata::data
