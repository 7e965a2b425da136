#include "strata/train/guard.hpp"

#include <algorithm>
#include <cmath>

namespace strata::train {

const char* to_string(BadKind kind) {
  switch (kind) {
    case BadKind::none: return "";
    case BadKind::nonfinite: return "nonfinite";
    case BadKind::loss_spike: return "loss_spike";
  }
  return "?";
}

StepGuard::StepGuard(const config::GuardConfig& config, ckpt::GuardState state)
    : config_(config), state_(std::move(state)) {}

double StepGuard::spike_threshold() const {
  if (config_.loss_spike_factor <= 0 || state_.loss_count < std::max(1, config_.loss_warmup)) return 0;
  return config_.loss_spike_factor * state_.loss_mean;
}

BadKind StepGuard::judge(double loss, double grad_norm) const {
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) return BadKind::nonfinite;
  const double threshold = spike_threshold();
  if (threshold > 0 && loss > threshold) return BadKind::loss_spike;
  return BadKind::none;
}

void StepGuard::record(BadKind kind, double loss) {
  if (kind != BadKind::none) {
    ++state_.bad_streak;
    ++state_.skipped_steps;
    return;
  }
  state_.bad_streak = 0;
  ++state_.loss_count;
  const long n = std::min<long>(state_.loss_count, config_.loss_window);
  state_.loss_mean += (loss - state_.loss_mean) / double(n);
}

void StepGuard::rolled_back(const ckpt::GuardState& at_checkpoint, std::uint64_t skip_begin,
                            std::uint64_t skip_end) {
  ckpt::GuardState next = at_checkpoint;
  next.bad_streak = 0;
  next.skipped_steps = state_.skipped_steps;
  next.rollbacks = state_.rollbacks + 1;
  next.skipped_samples = state_.skipped_samples;
  next.skipped_samples.emplace_back(skip_begin, skip_end);
  state_ = std::move(next);
}

}  // namespace strata::train
