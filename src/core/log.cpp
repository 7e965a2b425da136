#include "strata/core/log.hpp"

#include <cstdio>
#include <fstream>
#include <string>

namespace strata {

namespace {
const Timer& process_clock() {
  static const Timer clock;  // read-only after first use: the log's time origin
  return clock;
}

std::size_t read_status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stoull(line.substr(prefix.size()));
  return 0;
}
}  // namespace

void log_line(LogLevel level, const std::string& message) {
  const char* tag = level == LogLevel::warn ? " WARNING: " : level == LogLevel::error ? " ERROR: " : " ";
  std::fprintf(stderr, "[strata %8.2fs]%s%s\n", process_clock().seconds(), tag, message.c_str());
}

std::size_t peak_rss_bytes() { return read_status_kib("VmHWM") * 1024; }
std::size_t current_rss_bytes() { return read_status_kib("VmRSS") * 1024; }

}  // namespace strata
