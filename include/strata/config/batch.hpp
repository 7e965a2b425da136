// The batch of one optimizer step from the parallel settings and the data-parallel size:
// micro-batch size, micro-batches per DP rank and global batch (sequences), following
// ParallelConfig's rules (global = micro x dp x micro-batches; either of the last two may be
// derived from the others). Shared by the trainer and the checks made before a job is submitted
// (strata plan --config, slurm/scaling_study.sh), so both refuse the same batches with the same
// message.
#pragma once
#include "strata/config/config.hpp"

namespace strata::config {

struct BatchShape {
  int micro = 1;         // sequences per micro-batch
  int dp = 1;            // data-parallel ranks
  int microbatches = 1;  // per DP rank and step
  int global = 1;        // sequences per step
};

// Throws strata::Error naming parallel.global_batch_size and the factors when they disagree.
BatchShape resolve_batch(const ParallelConfig& parallel, int dp);

}  // namespace strata::config
