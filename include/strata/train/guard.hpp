// The bad-step guard (docs/checkpoints.md, "Bad steps"): decides from a step's loss and global
// gradient norm — the same numbers on every rank — whether the step is applied or skipped, and
// when a run of bad steps calls for a rollback to the last checkpoint.
//
//   bad      = loss or gradient norm is NaN/Inf
//              or (guard.loss_spike_factor > 0, at least guard.loss_warmup good steps seen)
//                 loss > loss_spike_factor x mean
//   mean     = running mean of the good steps' losses: after good step n,
//                 mean += (loss - mean) / min(n, guard.loss_window)
//              (the plain mean over the first loss_window steps, then an exponential mean
//              with weight 1/loss_window: about the last loss_window steps)
//   rollback = guard.rollback_after > 0 and that many bad steps in a row
//
// A bad step changes nothing but the guard's counters: no optimizer update (the parameters,
// the Adam moments and Adam's step count stay as they were), no entry in the mean. Pure: no
// MPI, no engine; its whole state is ckpt::GuardState, stored in every checkpoint, so a
// resumed run repeats the decisions of an uninterrupted one.
#pragma once
#include <cstdint>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/config.hpp"

namespace strata::train {

enum class BadKind { none, nonfinite, loss_spike };
// "", "nonfinite", "loss_spike" (the metrics field `bad`).
const char* to_string(BadKind kind);

class StepGuard {
 public:
  explicit StepGuard(const config::GuardConfig& config, ckpt::GuardState state = {});

  // The verdict on a step with this loss and gradient norm.
  BadKind judge(double loss, double grad_norm) const;
  // Records the verdict: a good step enters the mean and ends a run of bad steps; a bad one
  // is counted and extends the run.
  void record(BadKind kind, double loss);
  bool rollback_due() const {
    return config_.rollback_after > 0 && state_.bad_streak >= config_.rollback_after;
  }
  bool may_roll_back() const { return state_.rollbacks < config_.max_rollbacks; }
  // After a rollback to a checkpoint whose guard state was `at_checkpoint`: its running mean,
  // no run of bad steps, this run's counters (one more rollback) and the samples
  // [skip_begin, skip_end) added to the skipped windows.
  void rolled_back(const ckpt::GuardState& at_checkpoint, std::uint64_t skip_begin, std::uint64_t skip_end);

  const ckpt::GuardState& state() const { return state_; }
  // The loss above which a step is a spike now; 0 when the spike test does not apply yet.
  double spike_threshold() const;

 private:
  config::GuardConfig config_;
  ckpt::GuardState state_;
};

}  // namespace strata::train
