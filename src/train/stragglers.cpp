#include "strata/train/stragglers.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace strata::train {

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(mid), v.end());
  const double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + std::ptrdiff_t(mid)));
}

std::string coordinates(const comm::GridShape& s, const comm::GridCoord& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "tp %d/%d, dp %d/%d, pp %d/%d", c.tp_rank, s.tp, c.dp_rank, s.dp, c.pp_rank,
                s.pp);
  return buf;
}

}  // namespace

StragglerReport rank_stragglers(std::vector<RankTimes> all, const comm::GridShape& shape, int top) {
  StragglerReport r;
  r.shape = shape;
  if (all.empty()) return r;
  std::map<int, std::vector<double>> by_stage;
  std::vector<double> compute;
  for (const RankTimes& t : all) {
    by_stage[t.coord.pp_rank].push_back(t.compute_ms);
    compute.push_back(t.compute_ms);
    r.compute_ms_max = std::max(r.compute_ms_max, t.compute_ms);
    r.step_ms_max = std::max(r.step_ms_max, t.step_ms);
  }
  r.compute_ms_median = median(compute);
  std::map<int, double> stage_median;
  for (auto& [stage, v] : by_stage) stage_median[stage] = median(std::move(v));
  for (RankTimes& t : all) {
    const double m = stage_median[t.coord.pp_rank];
    t.slowdown = m > 0 ? t.compute_ms / m : 1.0;
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const RankTimes& a, const RankTimes& b) { return a.slowdown > b.slowdown; });
  all.resize(std::min(all.size(), std::size_t(std::max(top, 0))));
  r.slowest = std::move(all);
  return r;
}

std::string StragglerReport::json() const {
  std::ostringstream os;
  char buf[256];
  std::snprintf(
      buf, sizeof buf,
      "{\"step\": %ld, \"stragglers\": {\"steps\": %ld, \"ranks\": %d, \"compute_ms_median\": %.3f, "
      "\"compute_ms_max\": %.3f, \"step_ms_max\": %.3f, \"slowest\": [",
      step, steps, shape.size(), compute_ms_median, compute_ms_max, step_ms_max);
  os << buf;
  for (std::size_t i = 0; i < slowest.size(); ++i) {
    const RankTimes& t = slowest[i];
    std::snprintf(
        buf, sizeof buf,
        "%s{\"rank\": %d, \"tp\": %d, \"dp\": %d, \"pp\": %d, \"step_ms\": %.3f, \"compute_ms\": %.3f, "
        "\"wait_ms\": %.3f, \"slowdown\": %.4f}",
        i ? ", " : "", t.global_rank, t.coord.tp_rank, t.coord.dp_rank, t.coord.pp_rank, t.step_ms,
        t.compute_ms, t.wait_ms, t.slowdown);
    os << buf;
  }
  os << "]}}";
  return os.str();
}

std::string StragglerReport::log_line() const {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "stragglers over steps %ld-%ld: compute median %.1f ms, max %.1f ms; slowest:",
                step - steps + 1, step, compute_ms_median, compute_ms_max);
  os << buf;
  for (std::size_t i = 0; i < slowest.size(); ++i) {
    const RankTimes& t = slowest[i];
    std::snprintf(buf, sizeof buf,
                  "%s rank %d (%s) compute %.1f ms = %.2fx its stage's median, step %.1f ms, waits %.1f ms",
                  i ? ";" : "", t.global_rank, coordinates(shape, t.coord).c_str(), t.compute_ms, t.slowdown,
                  t.step_ms, t.wait_ms);
    os << buf;
  }
  return os.str();
}

StragglerMonitor::StragglerMonitor(comm::RankGrid& grid, int top) : grid_(grid), top_(top) {
  if (grid_.global_rank() == 0) gathered_.resize(std::size_t(grid_.world_size()) * 3);
}

void StragglerMonitor::add_step(double step_ms, double compute_ms, double wait_ms) {
  sum_[0] += step_ms;
  sum_[1] += compute_ms;
  sum_[2] += wait_ms;
  ++steps_;
}

StragglerReport StragglerMonitor::gather(long step) {
  const double n = steps_ > 0 ? double(steps_) : 1.0;
  const double mine[3] = {sum_[0] / n, sum_[1] / n, sum_[2] / n};
  grid_.world_group().gather(mine, gathered_.data(), 3, DType::f64, 0);
  const long steps = steps_;
  steps_ = 0;
  sum_[0] = sum_[1] = sum_[2] = 0;
  StragglerReport r;
  if (grid_.global_rank() == 0) {
    const comm::GridShape& shape = grid_.shape();
    std::vector<RankTimes> all(std::size_t(shape.size()));
    for (int g = 0; g < shape.size(); ++g) {
      RankTimes& t = all[std::size_t(g)];
      t.global_rank = g;
      t.coord = comm::coord_of(shape, g);
      t.step_ms = gathered_[std::size_t(3 * g)];
      t.compute_ms = gathered_[std::size_t(3 * g + 1)];
      t.wait_ms = gathered_[std::size_t(3 * g + 2)];
    }
    r = rank_stragglers(std::move(all), shape, top_);
  }
  r.shape = grid_.shape();
  r.step = step;
  r.steps = steps;
  return r;
}

}  // namespace strata::train
