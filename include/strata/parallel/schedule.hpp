// Pipeline schedules as data (Megatron-LM's habit, STYLE.md): a pure function lists, for one
// pipeline rank, the order of forward and backward passes over (micro-batch, model chunk).
// The executor (pipeline.hpp) derives the sends and receives from the list: a forward
// receives its input from the previous virtual stage and sends its output to the next; a
// backward the reverse.
//
//   gpipe            all forwards, then all backwards (Huang et al. 2019); m micro-batches in flight
//   1f1b             warm-up of min(pp - stage - 1, m) forwards, then one forward / one backward,
//                    then the remaining backwards (PipeDream-Flush, Narayanan et al. 2021);
//                    at most pp - stage micro-batches in flight
//   interleaved_1f1b v model chunks per rank, virtual stage = chunk * pp + stage (Narayanan et
//                    al. 2021, section 2.2); micro-batches in groups of pp per chunk; warm-up
//                    (pp - stage - 1) * 2 + (v - 1) * pp; needs m % pp == 0
// Bubble fraction (idle time over ideal time): (pp - 1) / (v * m).
#pragma once
#include <string>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::parallel {

struct PipelineAction {
  enum class Kind { forward, backward };
  Kind kind;
  int microbatch;
  int chunk;  // model chunk on this rank (0 unless interleaved)
  bool operator==(const PipelineAction&) const = default;
};

std::vector<PipelineAction> build_schedule(config::PipelineSchedule kind, int pp, int stage, int microbatches,
                                           int virtual_stages);

// Most micro-batches of `chunk` whose forward has run and backward has not, at any point.
int max_in_flight(const std::vector<PipelineAction>& schedule, int chunk);

double bubble_fraction(int pp, int microbatches, int virtual_stages);

// "F0 F1 B0 F2 B1 ..." (chunk suffix "c1" when interleaved), for tests and debug logs.
std::string to_string(const std::vector<PipelineAction>& schedule);

}  // namespace strata::parallel
