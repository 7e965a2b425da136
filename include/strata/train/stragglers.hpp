// Straggler reports: which ranks make the others wait.
//
// Every step each rank adds its own times (no communication); every train.log_interval steps
// StragglerMonitor::gather() sends each rank's means over the interval — step, compute and wait
// time, three doubles — to global rank 0 in one MPI_Gather over the job (24 bytes per rank:
// 0.8 MB at 32,768 ranks, once per interval), and rank 0 ranks them.
//
// A rank is compared with the ranks of its own pipeline stage: stages do different work (the
// first holds the embedding, the last the output layer and the loss), so a fixed ranking by
// compute time would always name the last stage. The score of a rank is
//     slowdown = compute_ms / median(compute_ms of the ranks with the same pp_rank)
// and the report lists the `top` ranks with the highest slowdown (ties: the lower rank first),
// with their grid coordinates. A healthy job has every slowdown near 1; one slow GPU, a
// throttled node or a noisy neighbour shows as one rank (or one node's ranks) well above it,
// while its peers' wait times grow.
#pragma once
#include <string>
#include <vector>

#include "strata/comm/rank_grid.hpp"

namespace strata::train {

struct RankTimes {
  int global_rank = 0;
  comm::GridCoord coord;
  double step_ms = 0;     // mean wall time of a step on this rank
  double compute_ms = 0;  // mean forward/backward compute
  double wait_ms = 0;     // mean time blocked on pipeline neighbours, DP reductions and data
  double slowdown = 1;    // compute_ms / the median compute_ms of its pipeline stage
};

struct StragglerReport {
  long step = 0;   // the step of the gather
  long steps = 0;  // steps averaged (since the previous gather)
  comm::GridShape shape;
  double compute_ms_median = 0;  // over all ranks
  double compute_ms_max = 0;
  double step_ms_max = 0;
  std::vector<RankTimes> slowest;  // highest slowdown first; empty on ranks other than 0

  // `{"step": S, "stragglers": {...}}`: one line of metrics.jsonl.
  std::string json() const;
  // "stragglers over steps 51-100: compute median 12.1 ms, max 20.3 ms; slowest rank 5 (tp 1/2, ...) ..."
  std::string log_line() const;
};

// Ranks `all` (one entry per rank, in global rank order) as rank 0 does. Pure: unit-tested.
StragglerReport rank_stragglers(std::vector<RankTimes> all, const comm::GridShape& shape, int top);

class StragglerMonitor {
 public:
  explicit StragglerMonitor(comm::RankGrid& grid, int top = 3);

  // This rank's times of one step; local, no communication.
  void add_step(double step_ms, double compute_ms, double wait_ms);

  // Collective over the job (every rank calls it at the same steps): the means since the last
  // gather, gathered on global rank 0, which gets the report; the other ranks get one with an
  // empty `slowest`. Restarts the means.
  StragglerReport gather(long step);
  // Drops the times since the last gather (a rollback: those steps are trained again). Every
  // rank does it at the same step, so the gathers stay aligned.
  void restart() {
    steps_ = 0;
    sum_[0] = sum_[1] = sum_[2] = 0;
  }

 private:
  comm::RankGrid& grid_;
  int top_;
  long steps_ = 0;
  double sum_[3] = {0, 0, 0};
  std::vector<double> gathered_;  // rank 0: 3 per rank, sized once
};

}  // namespace strata::train
