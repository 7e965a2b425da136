#include "strata/config/batch.hpp"

#include "strata/core/error.hpp"

namespace strata::config {

BatchShape resolve_batch(const ParallelConfig& p, int dp) {
  BatchShape b{p.micro_batch_size, dp, 1, 0};
  if (p.num_microbatches > 0) {
    b.microbatches = p.num_microbatches;
    b.global = b.micro * dp * b.microbatches;
    if (p.global_batch_size > 0 && p.global_batch_size != b.global)
      throw make_error("parallel.global_batch_size (", p.global_batch_size, ") != micro_batch_size x dp x ",
                       "num_microbatches (", b.micro, " x ", dp, " x ", b.microbatches, " = ", b.global, ")");
  } else if (p.global_batch_size > 0) {
    if (p.global_batch_size % (b.micro * dp) != 0)
      throw make_error("parallel.global_batch_size (", p.global_batch_size,
                       ") must be a multiple of micro_batch_size x dp (", b.micro, " x ", dp, " = ",
                       b.micro * dp, ")");
    b.global = p.global_batch_size;
    b.microbatches = b.global / (b.micro * dp);
  } else {
    b.global = b.micro * dp;
  }
  return b;
}

}  // namespace strata::config
