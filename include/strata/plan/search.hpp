// Layout search for `strata plan`: enumerate every supported layout of a GPU count for a global
// batch, predict memory and step time for each, drop those over the accelerator's memory and
// rank the rest by step time.
//
// Enumerated: tp dividing the GPUs per node (Megatron keeps TP inside a node), pp dividing the
// layers, dp = GPUs / (tp pp), the micro-batch sizes of the request, every virtual-stage count up
// to the request's maximum that divides the layers per stage, ZeRO 0/1 when dp > 1, sequence
// parallelism on/off when tp > 1, the request's recomputation choices. Every candidate, whether
// enumerated, searched for the minimum GPU count or given with --explain, then passes the one
// filter layout_unsupported().
#pragma once
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"
#include "strata/plan/layout.hpp"
#include "strata/plan/memory.hpp"
#include "strata/plan/step_time.hpp"
#include "strata/plan/uncertainty.hpp"

namespace strata::plan {

struct PlanRequest {
  Workload workload;
  config::ClusterConfig cluster;
  int gpus = 1;
  int global_batch = 1;  // sequences per optimizer step
  double tokens = 0;     // the run's token target
  std::vector<Recompute> recompute{Recompute::none, Recompute::full};
  std::vector<int> micro_batch_sizes{1, 2, 4, 8, 16};
  int max_virtual_stages = 8;
  int max_cp = 1;  // context-parallel sizes searched: 1, 2, 4, .. up to this (--max-cp)
};

struct Candidate {
  Layout layout;
  MemoryBreakdown memory;
  StepTime time;
  RunTime run;
  bool fits = false;
  // With the cluster's assumed constants at the slow and at the fast ends of their ranges
  // (uncertainty.hpp); equal to time/run when the cluster has no assumptions.
  bool uncertain = false;
  StepTime slow, fast;
  RunTime run_slow, run_fast;
};

struct PlanResult {
  std::vector<Candidate> fitting;  // best (shortest step) first
  int enumerated = 0;
  int over_memory = 0;
  double usable_bytes = 0;  // per accelerator
};

// Why `layout` cannot run `request` ("" when it can): the one filter of candidate layouts.
// Checks what the model and the schedule allow: tp divides the heads, the KV heads and the MLP
// width; pp x v divides the layers; v > 1 needs pp > 1, 1F1B and a micro-batch count that is a
// multiple of pp (Megatron-LM's interleaved schedule); tp x pp x dp = the GPUs; the global batch is
// whole micro-batches; and, for strata's own layouts, the backend support statement
// (config/capabilities.hpp, DESIGN.md invariant 8), so that the search never proposes a layout
// the launch would refuse.
std::string layout_unsupported(const PlanRequest& request, const Layout& layout);

// Predict one layout (also at both ends of the cluster's assumptions).
Candidate evaluate(const PlanRequest& request, const Layout& layout);

// Every supported layout (before the memory check); `expressible` receives how many passed the
// shape rules before the backend's support statement was consulted.
std::vector<Layout> enumerate_layouts(const PlanRequest& request, int* expressible = nullptr);

// Search; throws strata::Error saying what to change when no layout is valid or none fits
// ("needs at least 64 H100 SXM 80GB for llama2_70b at ZeRO-1; got 32").
PlanResult search_layouts(const PlanRequest& request);

// The smallest GPU count (powers of two up to a node, then whole nodes) on which some layout fits
// with every memory saving on (ZeRO-1, sequence parallelism, full recomputation, micro-batch 1);
// 0 when none up to 65536 GPUs does. `layout` receives that layout.
int min_gpus_to_fit(const PlanRequest& request, Layout* layout = nullptr);

}  // namespace strata::plan
