#include "strata/train/signals.hpp"

#include <csignal>
#include <cstdio>

namespace strata::train {

namespace {

volatile std::sig_atomic_t g_received = 0;
struct sigaction g_old_term, g_old_usr1;

extern "C" void record_signal(int signum) { g_received = signum; }

}  // namespace

StopSignals::StopSignals() {
  g_received = 0;
  struct sigaction sa {};
  sa.sa_handler = record_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking calls (MPI, file I/O) carry on; the step ends normally
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGUSR1, &sa, &g_old_usr1);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGUSR1, &g_old_usr1, nullptr);
}

int StopSignals::received() { return g_received; }

const char* signal_name(int signum) {
  switch (signum) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: {
      static thread_local char buf[24];
      std::snprintf(buf, sizeof buf, "signal %d", signum);
      return buf;
    }
  }
}

}  // namespace strata::train
