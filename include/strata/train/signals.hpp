// Preemption signals. Slurm sends SIGUSR1 (`--signal=USR1@<seconds>`) before a time limit and
// SIGTERM on preemption or scancel; either makes the trainer finish its current step, save a
// checkpoint and exit 0. The handler only records the signal; the trainer polls it at step
// boundaries and agrees on it over all ranks (one may have received it, not the others).
#pragma once

namespace strata::train {

class StopSignals {
 public:
  StopSignals();   // installs the handlers for SIGTERM and SIGUSR1
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The signal received since construction (its number), or 0.
  static int received();
};

// "SIGTERM", "SIGUSR1", or "signal N".
const char* signal_name(int signum);

}  // namespace strata::train
