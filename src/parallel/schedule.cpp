#include "strata/parallel/schedule.hpp"

#include <algorithm>
#include <sstream>

#include "strata/config/load.hpp"
#include "strata/core/error.hpp"

namespace strata::parallel {

using Kind = PipelineAction::Kind;

namespace {

std::vector<PipelineAction> gpipe(int m) {
  std::vector<PipelineAction> s;
  for (int i = 0; i < m; ++i) s.push_back({Kind::forward, i, 0});
  for (int i = 0; i < m; ++i) s.push_back({Kind::backward, i, 0});
  return s;
}

std::vector<PipelineAction> one_f_one_b(int pp, int stage, int m) {
  const int warmup = std::min(pp - stage - 1, m);
  std::vector<PipelineAction> s;
  int f = 0, b = 0;
  for (; f < warmup; ++f) s.push_back({Kind::forward, f, 0});
  for (; f < m; ++f, ++b) {
    s.push_back({Kind::forward, f, 0});
    s.push_back({Kind::backward, b, 0});
  }
  for (; b < m; ++b) s.push_back({Kind::backward, b, 0});
  return s;
}

// Megatron-LM's interleaved schedule: virtual micro-step k (0 <= k < m v) runs micro-batch
// (k / (pp v)) pp + k % pp on chunk (k / pp) % v (forward), or chunk v - 1 - that (backward).
std::vector<PipelineAction> interleaved(int pp, int stage, int m, int v) {
  const int total = m * v;
  auto chunk_of = [&](int k, bool forward) {
    const int c = (k % (pp * v)) / pp;
    return forward ? c : v - 1 - c;
  };
  auto mb_of = [&](int k) { return (k / (pp * v)) * pp + k % pp; };
  const int warmup = m == pp ? total : std::min(total, (pp - stage - 1) * 2 + (v - 1) * pp);
  std::vector<PipelineAction> s;
  for (int k = 0; k < warmup; ++k) s.push_back({Kind::forward, mb_of(k), chunk_of(k, true)});
  const int steady = total - warmup;
  for (int i = 0; i < steady; ++i) {
    const int kf = warmup + i;
    s.push_back({Kind::forward, mb_of(kf), chunk_of(kf, true)});
    s.push_back({Kind::backward, mb_of(i), chunk_of(i, false)});
  }
  for (int i = steady; i < total; ++i) s.push_back({Kind::backward, mb_of(i), chunk_of(i, false)});
  return s;
}

// ZB-H1 (Qi et al. 2023, section 3.1): 1f1b's order of forwards and input-gradient passes;
// stage s runs each W right after its B once s W passes are pending, the rest at the end.
std::vector<PipelineAction> zb_h1(int pp, int stage, int m) {
  const int warmup = std::min(pp - stage - 1, m), pending = stage;
  std::vector<PipelineAction> s;
  int f = 0, b = 0, w = 0;
  auto backward = [&] {
    s.push_back({Kind::backward, b++, 0});
    if (b - w > pending) s.push_back({Kind::weight, w++, 0});
  };
  for (; f < warmup; ++f) s.push_back({Kind::forward, f, 0});
  for (; f < m; ++f) {
    s.push_back({Kind::forward, f, 0});
    backward();
  }
  while (b < m) backward();
  for (; w < m; ++w) s.push_back({Kind::weight, w, 0});
  return s;
}

}  // namespace

std::vector<PipelineAction> build_schedule(config::PipelineSchedule kind, int pp, int stage, int microbatches,
                                           int virtual_stages) {
  STRATA_CHECK(pp >= 1 && stage >= 0 && stage < pp && microbatches >= 1, "pipeline schedule: pp ", pp,
               ", stage ", stage, ", micro-batches ", microbatches);
  switch (kind) {
    case config::PipelineSchedule::gpipe: return gpipe(microbatches);
    case config::PipelineSchedule::one_f_one_b: return one_f_one_b(pp, stage, microbatches);
    case config::PipelineSchedule::interleaved_1f1b:
      if (virtual_stages < 2 || microbatches % pp != 0)
        throw make_error("interleaved_1f1b needs parallel.virtual_stages >= 2 (got ", virtual_stages,
                         ") and micro-batches per step (", microbatches, ") divisible by parallel.pp (", pp,
                         ")");
      return interleaved(pp, stage, microbatches, virtual_stages);
    case config::PipelineSchedule::zb_h1: return zb_h1(pp, stage, microbatches);
  }
  return {};
}

int max_in_flight(const std::vector<PipelineAction>& schedule, int chunk) {
  // A micro-batch's activations are freed by its last pass: W where the schedule splits the
  // backward, else the backward.
  const bool split =
      std::any_of(schedule.begin(), schedule.end(), [](auto& a) { return a.kind == Kind::weight; });
  const Kind frees = split ? Kind::weight : Kind::backward;
  int now = 0, most = 0;
  for (const auto& a : schedule) {
    if (a.chunk != chunk) continue;
    if (a.kind == Kind::forward) ++now;
    if (a.kind == frees) --now;
    most = std::max(most, now);
  }
  return most;
}

double bubble_fraction(int pp, int microbatches, int virtual_stages) {
  return double(pp - 1) / (double(virtual_stages) * microbatches);
}

double bubble_fraction(config::PipelineSchedule kind, int pp, int microbatches, int virtual_stages) {
  if (kind == config::PipelineSchedule::zb_h1)
    return simulated_bubble_fraction(kind, pp, microbatches, 1, {});
  return bubble_fraction(pp, microbatches, virtual_stages);
}

double simulated_bubble_fraction(config::PipelineSchedule kind, int pp, int microbatches, int virtual_stages,
                                 const PassCosts& costs) {
  const int v = kind == config::PipelineSchedule::interleaved_1f1b ? virtual_stages : 1, m = microbatches;
  std::vector<std::vector<PipelineAction>> sched;
  for (int stage = 0; stage < pp; ++stage) sched.push_back(build_schedule(kind, pp, stage, m, v));
  const bool split = kind == config::PipelineSchedule::zb_h1;
  const double f = costs.forward / v,
               b = (split ? costs.input_grad : costs.input_grad + costs.weight_grad) / v,
               w = costs.weight_grad / v;
  // finish[kind][virtual stage][micro-batch]: when that pass ended (< 0: not yet).
  const int nvs = pp * v;
  std::vector<std::vector<std::vector<double>>> finish(
      3, std::vector<std::vector<double>>(std::size_t(nvs), std::vector<double>(std::size_t(m), -1.0)));
  std::vector<double> clock(std::size_t(pp), 0.0);
  std::vector<std::size_t> next(std::size_t(pp), 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int stage = 0; stage < pp; ++stage) {
      auto& list = sched[std::size_t(stage)];
      for (std::size_t& i = next[std::size_t(stage)]; i < list.size(); ++i) {
        const PipelineAction& a = list[i];
        const int vs = a.chunk * pp + stage;
        double ready = 0;
        if (a.kind == Kind::forward && vs > 0)
          ready = finish[0][std::size_t(vs - 1)][std::size_t(a.microbatch)];
        if (a.kind == Kind::backward && vs < nvs - 1)
          ready = finish[1][std::size_t(vs + 1)][std::size_t(a.microbatch)];
        if (ready < 0) break;  // waits on another stage
        const double cost = a.kind == Kind::forward ? f : a.kind == Kind::backward ? b : w;
        double& t = clock[std::size_t(stage)];
        t = std::max(t, ready) + cost;
        finish[std::size_t(a.kind)][std::size_t(vs)][std::size_t(a.microbatch)] = t;
        progress = true;
      }
    }
  }
  for (int stage = 0; stage < pp; ++stage)
    STRATA_CHECK(next[std::size_t(stage)] == sched[std::size_t(stage)].size(), config::to_string(kind),
                 " schedule deadlocks on pp ", pp, ", ", m, " micro-batches: stage ", stage,
                 " stuck at action ", next[std::size_t(stage)]);
  const double ideal = m * (costs.forward + costs.input_grad + costs.weight_grad);
  return (*std::max_element(clock.begin(), clock.end()) - ideal) / ideal;
}

std::string to_string(const std::vector<PipelineAction>& schedule) {
  bool chunks = false;
  for (const auto& a : schedule) chunks |= a.chunk != 0;
  std::ostringstream os;
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    const auto& a = schedule[i];
    os << (i ? " " : "")
       << (a.kind == Kind::forward    ? 'F'
           : a.kind == Kind::backward ? 'B'
                                      : 'W')
       << a.microbatch;
    if (chunks) os << 'c' << a.chunk;
  }
  return os.str();
}

}  // namespace strata::parallel
