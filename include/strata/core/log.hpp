// Logging: one line per event to stderr, prefixed with the elapsed time. Only the ranks
// that the caller lets log (rank 0 by default) print; there is no global logger state
// beyond the start time.
#pragma once
#include <iostream>
#include <sstream>
#include <string>

#include "strata/core/timer.hpp"

namespace strata {

enum class LogLevel { debug, info, warn, error };

void log_line(LogLevel level, const std::string& message);

template <class... Args>
void log_info(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  log_line(LogLevel::info, os.str());
}
template <class... Args>
void log_warn(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  log_line(LogLevel::warn, os.str());
}

// Resident memory: the peak (VmHWM) and current (VmRSS) of this process, in bytes.
std::size_t peak_rss_bytes();
std::size_t current_rss_bytes();

}  // namespace strata
