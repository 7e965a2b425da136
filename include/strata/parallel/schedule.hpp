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
//   zb_h1            1f1b with the backward split into B (input gradient, sent on at once) and W
//                    (weight gradient, no communication): stage s keeps up to s W passes pending
//                    and runs them in the cool-down, where 1f1b idles (Qi et al. 2023, "Zero
//                    Bubble Pipeline Parallelism", section 3.1, ZB-H1). A micro-batch is in
//                    flight from its F to its W: at most pp (stage 0's 1f1b peak) on every stage.
// Bubble fraction (idle time over ideal time): (pp - 1) / (v * m); zb_h1 with pass costs F, B,
// W (m >= pp): (pp - 1) (F + B - W) / (m (F + B + W)).
#pragma once
#include <string>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::parallel {

struct PipelineAction {
  enum class Kind { forward, backward, weight };  // weight: zb_h1's W pass (backward is then B only)
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
// The schedule's: zb_h1's with unit pass costs ((pp - 1) / (3 m) once m >= pp), else the above.
double bubble_fraction(config::PipelineSchedule kind, int pp, int microbatches, int virtual_stages);

// The cost of each pass of one micro-batch through one whole pipeline stage (a model chunk
// costs 1/v of it): forward, input gradient (B), weight gradient (W). A schedule without W
// passes runs B and W fused in its backward.
struct PassCosts {
  double forward = 1, input_grad = 1, weight_grad = 1;
};
// Runs every stage's schedule on a clock with these costs and free communication: a pass
// starts when its stage is free and its input (forward: the previous virtual stage's forward;
// backward: the next one's) has finished. Idle time over ideal time m (F + B + W), on the stage
// that finishes last. Throws if the schedules deadlock.
double simulated_bubble_fraction(config::PipelineSchedule kind, int pp, int microbatches, int virtual_stages,
                                 const PassCosts& costs);

// "F0 F1 B0 F2 B1 ..." (chunk suffix "c1" when interleaved), for tests and debug logs.
std::string to_string(const std::vector<PipelineAction>& schedule);

}  // namespace strata::parallel
