// Layout search for `strata plan`: enumerate every valid layout of a GPU count for a global
// batch, predict memory and step time for each, drop those over the accelerator's memory and
// rank the rest by step time.
//
// Valid: tp divides the GPUs per node (Megatron keeps TP inside a node), the query and KV heads
// and the MLP width; pp divides the layers; tp·pp·dp = GPUs; the global batch is a whole number of
// micro-batches per DP rank; interleaving (v > 1) needs pp > 1, L divisible by pp·v and the
// micro-batch count a multiple of pp (Megatron-LM's requirement); sequence parallelism needs
// tp > 1; ZeRO-1 needs dp > 1.
#pragma once
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"
#include "strata/plan/layout.hpp"
#include "strata/plan/memory.hpp"
#include "strata/plan/step_time.hpp"

namespace strata::plan {

struct PlanRequest {
  Workload workload;
  config::ClusterConfig cluster;
  int gpus = 1;
  int global_batch = 1;              // sequences per optimizer step
  double tokens = 0;                 // the run's token target
  std::vector<Recompute> recompute{Recompute::none, Recompute::full};
  std::vector<int> micro_batch_sizes{1, 2, 4, 8};
  int max_virtual_stages = 4;
};

struct Candidate {
  Layout layout;
  MemoryBreakdown memory;
  StepTime time;
  RunTime run;
  bool fits = false;
};

struct PlanResult {
  std::vector<Candidate> fitting;    // best (shortest step) first
  int enumerated = 0;
  int over_memory = 0;
  double usable_bytes = 0;           // per accelerator
};

// Predict one layout.
Candidate evaluate(const PlanRequest& request, const Layout& layout);

// Every valid layout (before the memory check).
std::vector<Layout> enumerate_layouts(const PlanRequest& request);

// Search; throws strata::Error saying what to change when no layout is valid or none fits
// ("needs at least 64 H100 SXM 80GB for llama2_70b at ZeRO-1; got 32").
PlanResult search_layouts(const PlanRequest& request);

// The smallest GPU count (powers of two up to a node, then whole nodes) on which some layout fits
// with every memory saving on (ZeRO-1, sequence parallelism, full recomputation, micro-batch 1);
// 0 when none up to 65536 GPUs does. `layout` receives that layout.
int min_gpus_to_fit(const PlanRequest& request, Layout* layout = nullptr);

}  // namespace strata::plan
