// Context parallelism in the engine: which positions of each sequence this cp rank keeps.
#pragma once
#include <cstdint>
#include <cstring>

namespace strata::parallel::detail {

// rows holds B sequences of T tokens; keep this cp rank's two chunks of c = T / (2 cp), chunk
// r then chunk 2 cp - 1 - r, as B sequences of 2c at the front of the same buffer (in place:
// every destination lies before or at its source).
inline void keep_cp_chunks(std::int32_t* rows, std::int64_t B, std::int64_t T, int cp, int r) {
  const std::int64_t c = T / (2 * cp);
  for (std::int64_t b = 0; b < B; ++b) {
    std::memmove(rows + b * 2 * c, rows + b * T + r * c, std::size_t(c) * sizeof(std::int32_t));
    std::memmove(rows + b * 2 * c + c, rows + b * T + (2 * cp - 1 - r) * c,
                 std::size_t(c) * sizeof(std::int32_t));
  }
}

}  // namespace strata::parallel::detail
