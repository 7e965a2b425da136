#include "strata/parallel/schedule.hpp"

#include <algorithm>
#include <sstream>

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
  }
  return {};
}

int max_in_flight(const std::vector<PipelineAction>& schedule, int chunk) {
  int now = 0, most = 0;
  for (const auto& a : schedule) {
    if (a.chunk != chunk) continue;
    now += a.kind == Kind::forward ? 1 : -1;
    most = std::max(most, now);
  }
  return most;
}

double bubble_fraction(int pp, int microbatches, int virtual_stages) {
  return double(pp - 1) / (double(virtual_stages) * microbatches);
}

std::string to_string(const std::vector<PipelineAction>& schedule) {
  bool chunks = false;
  for (const auto& a : schedule) chunks |= a.chunk != 0;
  std::ostringstream os;
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    const auto& a = schedule[i];
    os << (i ? " " : "") << (a.kind == Kind::forward ? 'F' : 'B') << a.microbatch;
    if (chunks) os << 'c' << a.chunk;
  }
  return os.str();
}

}  // namespace strata::parallel
