// Layout enumeration, ranking, and the messages for requests no layout satisfies.
#include "strata/plan/search.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "strata/config/capabilities.hpp"
#include "strata/core/error.hpp"
#include "strata/core/memory_plan.hpp"

namespace strata::plan {

namespace {
constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

double usable(const config::ClusterConfig& c) { return c.memory_gib * GiB; }

// The (pp, cp) pairs to search: every pp dividing the layers, with each context-parallel size
// up to r.max_cp (powers of two; 2 cp must divide the sequence length).
std::vector<std::pair<int, int>> pp_cp_pairs(const PlanRequest& r) {
  std::vector<std::pair<int, int>> out;
  for (int pp : divisors(r.workload.model.num_layers))
    for (int cp = 1; cp <= std::max(1, r.max_cp); cp *= 2)
      if (cp == 1 || r.workload.seq_len % (2 * cp) == 0) out.emplace_back(pp, cp);
  return out;
}

// What strata's engine on the cluster's device does not run of this layout (the support
// statement, config/capabilities.hpp; its first line, "" when it runs): the search never
// recommends a layout the job would refuse at launch. Layouts of another framework (the
// validation against published runs) are not strata's to refuse.
std::string backend_refuses(const PlanRequest& r, const Layout& l) {
  if (l.framework != Framework::strata) return "";
  config::ParallelConfig p;
  p.tp = l.tp, p.pp = l.pp, p.dp = l.dp, p.virtual_stages = l.vpp, p.micro_batch_size = l.micro_batch;
  p.zero_stage = l.zero, p.sequence_parallel = l.sequence_parallel, p.cp = l.cp;
  p.cp_mode = l.ulysses ? config::CpMode::ulysses : config::CpMode::ring;
  p.schedule = schedule_of(l);
  const std::vector<std::string> no =
      config::unsupported(r.cluster.device, r.workload.model, p, r.workload.seq_len);
  return no.empty() ? ""
                    : "strata's " + std::string(config::backend_support(r.cluster.device).name) +
                          " backend does not run it: " + no.front();
}

// The shape rules of layout_unsupported (what any engine needs).
std::string shape_unsupported(const PlanRequest& r, const Layout& l) {
  const config::ModelConfig& m = r.workload.model;
  const auto n = [](auto v) { return std::to_string(v); };
  if (l.tp < 1 || l.pp < 1 || l.dp < 1 || l.vpp < 1 || l.micro_batch < 1 || l.micro_batches < 1)
    return "every size must be >= 1";
  if (l.gpus() != r.gpus) return "tp x pp x dp = " + n(l.gpus()) + " but the job has " + n(r.gpus) + " GPUs";
  if (l.cp < 1 || r.workload.seq_len % (2 * l.cp))
    return "cp " + n(l.cp) + ": the sequence length " + n(r.workload.seq_len) +
           " must be a multiple of 2 x cp";
  if (m.num_heads % l.tp || m.kv_heads() % l.tp || m.ffn() % l.tp)
    return "tp " + n(l.tp) + " must divide the " + n(m.num_heads) + " heads, the " + n(m.kv_heads()) +
           " KV heads and the MLP width " + n(m.ffn());
  if (l.ulysses && (l.cp == 1 || (m.num_heads / l.tp) % l.cp || (m.kv_heads() / l.tp) % l.cp))
    return "ulysses cp " + n(l.cp) + " must divide the heads (" + n(m.num_heads / l.tp) + ") and KV heads (" +
           n(m.kv_heads() / l.tp) + ") of a tp rank";
  if (m.num_layers % (l.pp * l.vpp))
    return "pp x v = " + n(l.pp * l.vpp) + " must divide the " + n(m.num_layers) + " layers";
  if (l.global_batch() != r.global_batch)
    return "mb x m x dp = " + n(l.global_batch()) + " sequences but the global batch is " + n(r.global_batch);
  if (l.vpp > 1) {
    if (l.pp == 1) return "virtual stages (v " + n(l.vpp) + ") need a pipeline (pp > 1)";
    if (l.gpipe) return "virtual stages run the interleaved 1F1B schedule, not GPipe";
    if (l.micro_batches % l.pp)
      return "the interleaved schedule needs the micro-batches per step (" + n(l.micro_batches) +
             ") to be a multiple of pp (" + n(l.pp) + ")";
  }
  if (l.zero > 3) return "ZeRO stage must be 0, 1, 2 or 3";
  if (l.zb && (l.vpp > 1 || l.gpipe || l.recompute == Recompute::full))
    return "the zero-bubble schedule (zb) runs without virtual stages, GPipe or full recomputation";
  return "";
}
}  // namespace

std::string layout_unsupported(const PlanRequest& r, const Layout& l) {
  if (std::string why = shape_unsupported(r, l); !why.empty()) return why;
  return backend_refuses(r, l);
}

Candidate evaluate(const PlanRequest& r, const Layout& layout) {
  Candidate c;
  c.layout = layout;
  c.memory = predict_memory(r.workload, layout, r.cluster);
  c.time = predict_step_time(r.workload, layout, r.cluster, c.memory);
  c.run = run_time(r.tokens, c.time.tokens_per_s, layout.gpus(), r.cluster);
  c.fits = c.memory.total() <= usable(r.cluster);
  c.uncertain = !assumptions(r.cluster).empty();
  c.slow = c.uncertain ? predict_step_time(r.workload, layout, slowest_case(r.cluster), c.memory) : c.time;
  c.fast = c.uncertain ? predict_step_time(r.workload, layout, fastest_case(r.cluster), c.memory) : c.time;
  c.run_slow = run_time(r.tokens, c.slow.tokens_per_s, layout.gpus(), r.cluster);
  c.run_fast = run_time(r.tokens, c.fast.tokens_per_s, layout.gpus(), r.cluster);
  return c;
}

std::vector<Layout> enumerate_layouts(const PlanRequest& r, int* expressible) {
  std::vector<Layout> out;
  int shapes = 0;
  for (int tp : divisors(std::gcd(r.gpus, r.cluster.gpus_per_node))) {
    for (const auto& [pp, cp] : pp_cp_pairs(r)) {
      if (r.gpus % (tp * pp * cp) != 0) continue;
      const int dp = r.gpus / (tp * pp * cp);
      for (int mb : r.micro_batch_sizes) {
        if (r.global_batch % (mb * dp) != 0) continue;
        const int micro_batches = r.global_batch / (mb * dp);
        for (int v = 1; v <= (pp > 1 ? r.max_virtual_stages : 1); ++v) {
          for (int zero = 0; zero <= (dp > 1 ? 3 : 0); ++zero)
            for (int sp = 0; sp <= (tp > 1 ? 1 : 0); ++sp)
              for (Recompute rc : r.recompute)
                for (int zb = 0; zb <= (pp > 1 && v == 1 && rc != Recompute::full ? 1 : 0); ++zb)
                  for (int uly = 0; uly <= (cp > 1 ? 1 : 0); ++uly) {  // cp: the ring and Ulysses
                    Layout l;
                    l.tp = tp, l.pp = pp, l.dp = dp, l.vpp = v, l.micro_batch = mb;
                    l.micro_batches = micro_batches, l.zero = zero, l.sequence_parallel = sp == 1;
                    l.recompute = rc, l.precision = r.cluster.precision, l.zb = zb == 1, l.cp = cp;
                    l.ulysses = uly == 1;
                    if (!shape_unsupported(r, l).empty()) continue;
                    ++shapes;
                    if (backend_refuses(r, l).empty()) out.push_back(l);
                  }
        }
      }
    }
  }
  if (expressible) *expressible = shapes;
  return out;
}

int min_gpus_to_fit(const PlanRequest& r, Layout* found) {
  const config::ModelConfig& m = r.workload.model;
  std::vector<int> counts;
  for (int g = 1; g < r.cluster.gpus_per_node; g *= 2) counts.push_back(g);
  for (int nodes = 1; nodes * r.cluster.gpus_per_node <= 65536; ++nodes)
    counts.push_back(nodes * r.cluster.gpus_per_node);
  for (int g : counts) {
    PlanRequest at = r;  // the leanest layout of g GPUs: one micro-batch of 1 per stage
    at.gpus = g;
    for (int tp : divisors(std::gcd(g, r.cluster.gpus_per_node))) {
      for (int pp : divisors(m.num_layers)) {
        if (g % (tp * pp) != 0) continue;
        Layout l;
        l.tp = tp, l.pp = pp, l.dp = g / (tp * pp), l.micro_batch = 1, l.micro_batches = pp;
        l.zero = l.dp > 1 ? 1 : 0, l.sequence_parallel = tp > 1, l.recompute = Recompute::full;
        l.precision = r.cluster.precision;
        at.global_batch = l.global_batch();
        if (!layout_unsupported(at, l).empty()) continue;
        if (predict_memory(r.workload, l, r.cluster).total() <= usable(r.cluster)) {
          if (found) *found = l;
          return g;
        }
      }
    }
  }
  return 0;
}

PlanResult search_layouts(const PlanRequest& r) {
  const config::ModelConfig& m = r.workload.model;
  if (r.gpus <= 0) throw make_error("--gpus must be > 0, got ", r.gpus);
  if (r.global_batch <= 0) throw make_error("--global-batch must be > 0, got ", r.global_batch);
  PlanResult result;
  result.usable_bytes = usable(r.cluster);
  // Only layouts strata's engine runs on the cluster's device are enumerated (the one filter).
  int expressible = 0;
  const std::vector<Layout> layouts = enumerate_layouts(r, &expressible);
  result.enumerated = int(layouts.size());
  if (expressible > 0 && layouts.empty()) {
    const std::vector<std::string> no =
        config::unsupported(r.cluster.device, m, config::ParallelConfig{}, r.workload.seq_len);
    throw make_error("strata's ", config::backend_support(r.cluster.device).name,
                     " backend runs none of the ", expressible, " layouts for ", m.name,
                     no.empty() ? std::string() : ": " + no.front());
  }
  if (layouts.empty())
    throw make_error(
        "no layout of ", r.gpus, " GPUs splits a global batch of ", r.global_batch, " sequences for ", m.name,
        ": tp x pp x dp must equal the GPU count (tp dividing ", r.cluster.gpus_per_node,
        " GPUs per node and the ", m.num_heads, " heads, pp dividing the ", m.num_layers,
        " layers) and the global batch must be a multiple of micro-batch x dp; use a global batch "
        "that is a multiple of ",
        r.gpus, ", or a GPU count that divides it");
  Candidate smallest;
  double smallest_bytes = INFINITY;
  for (const Layout& l : layouts) {
    Candidate c = evaluate(r, l);
    if (c.fits) {
      result.fitting.push_back(std::move(c));
    } else {
      ++result.over_memory;
      if (c.memory.total() < smallest_bytes) smallest_bytes = c.memory.total(), smallest = c;
    }
  }
  if (result.fitting.empty()) {
    Layout need_layout;
    const int need = min_gpus_to_fit(r, &need_layout);
    const std::string gpu = r.cluster.gpu;
    if (need == 0)
      throw make_error(m.name, " does not fit on any number of ", gpu, " (", r.cluster.memory_gib,
                       " GiB each) up to 65536: even the smallest layout needs more memory per GPU; use an "
                       "accelerator with more memory");
    if (need <= r.gpus)
      throw make_error(
          m.name, " fits on ", need, " ", gpu, " (", to_string(need_layout), ") but no layout of ", r.gpus,
          " GPUs with a global batch of ", r.global_batch, " does (smallest: ", to_string(smallest.layout),
          " needs ", format_bytes(smallest_bytes), " of ", format_bytes(result.usable_bytes),
          "); change --global-batch so that more layouts are valid (a multiple of ", r.gpus, ")");
    throw make_error("needs at least ", need, " ", gpu, " for ", m.name, " at ZeRO-1 with full recomputation",
                     need_layout.tp > 1 ? " and sequence parallelism" : "", " (", to_string(need_layout),
                     "); got ", r.gpus, ": the leanest layout of ", r.gpus, " needs ",
                     format_bytes(smallest_bytes), " per GPU of ", format_bytes(result.usable_bytes),
                     "; raise --gpus to ", need, " or more, or use a GPU with more memory");
  }
  std::ranges::sort(result.fitting, [](const Candidate& a, const Candidate& b) {
    if (a.time.total != b.time.total) return a.time.total < b.time.total;
    return a.memory.total() < b.memory.total();
  });
  return result;
}

}  // namespace strata::plan
