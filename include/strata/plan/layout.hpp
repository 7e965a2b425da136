// A parallel layout: how a job's GPUs split the model and the batch, and the memory-saving
// switches. Written and parsed as one token, e.g. "tp8-pp4-dp16-v2-mb1-z1-sp-rfull":
//
//   tpN  tensor-parallel size          ppN  pipeline stages          dpN  data-parallel size
//   vN   virtual stages per rank (interleaved 1F1B; 1 = plain 1F1B)
//   mbN  micro-batch size (sequences)   zN   ZeRO stage (0: replicated Adam state, 1: sharded over dp)
//   sp   sequence parallelism on (Korthikanti et al. 2022, sec. 4.2.2)
//   rnone | rsel | rfull   activation recomputation: none, selective (attention core), full
//   gpipe  the GPipe schedule instead of 1F1B (all m micro-batches in flight; strata's CPU plan)
//   cpN    context parallelism: each sequence split over N ranks (ring attention; written only when N > 1)
//   zb     the zero-bubble schedule zb_h1 instead of 1F1B (Qi et al. 2023; parallel/schedule.hpp)
//   ulysses  context parallelism by all-to-all (parallel.cp_mode: ulysses) instead of the ring (cp > 1)
//
// The number of micro-batches per step follows from the global batch: m = B / (mb · dp).
#pragma once
#include <string>

#include "strata/config/cluster.hpp"
#include "strata/plan/flops.hpp"

namespace strata::plan {

// Whose software runs the layout. strata: strata's own engine (every prediction strata makes for
// its users). megatron_lm: Megatron-LM as its 2021-22 papers ran it, for the validation against
// them only: attention products as cuBLAS batched GEMMs (at the GEMM efficiency) with the s x s
// scores, softmax and dropout materialised (Korthikanti et al. 2022's activation bytes).
enum class Framework { strata, megatron_lm };

struct Layout {
  int tp = 1;
  int pp = 1;
  int dp = 1;
  int vpp = 1;            // virtual pipeline stages per rank
  int micro_batch = 1;    // sequences per micro-batch
  int micro_batches = 1;  // per step per DP rank (m)
  int zero = 1;           // 0, 1, 2 or 3
  bool sequence_parallel = false;
  bool gpipe = false;  // GPipe schedule (all forwards, then all backwards) instead of 1F1B
  bool zb = false;     // zero-bubble schedule zb_h1 (weight-gradient passes in the bubble) instead of 1F1B
  Recompute recompute = Recompute::none;
  config::Precision precision = config::Precision::bf16;
  Framework framework = Framework::strata;
  // The gradient reduction overlaps the backward (strata, PyTorch DDP, Megatron-LM's
  // --overlap-grad-reduce); false: it runs after the backward (Megatron-LM 2021's local DDP).
  bool overlap_grad_reduce = true;
  int cp = 1;            // context parallelism (ring attention over cp ranks, 1/cp of each sequence per rank)
  bool ulysses = false;  // cp by all-to-all to whole sequences of 1/cp of the heads (parallel.cp_mode)

  int gpus() const { return tp * pp * dp * cp; }
  int global_batch() const { return micro_batch * micro_batches * dp; }
};

// What is trained: the model, its parameter counts (computed once) and the sequence length.
struct Workload {
  config::ModelConfig model;
  ParameterCounts counts;
  int seq_len = 0;

  static Workload of(const config::ModelConfig& model, int seq_len) {
    return {model, count_parameters(model), seq_len > 0 ? seq_len : model.max_seq_len};
  }
};

// "tp8-pp4-dp16-v2-mb1-z1-sp-rfull" (no "sp" when off).
std::string to_string(const Layout& layout);

// The pipeline schedule the layout runs: interleaved_1f1b (v > 1), gpipe, zb_h1 or 1f1b.
config::PipelineSchedule schedule_of(const Layout& layout);

// Parse the form above; missing parts default (dp = gpus / (tp·pp), v1, mb1, z1, no sp, rnone),
// micro_batches from `global_batch`. Throws naming the bad part and what is allowed.
Layout parse_layout(const std::string& text, int gpus, int global_batch, config::Precision precision);

}  // namespace strata::plan
