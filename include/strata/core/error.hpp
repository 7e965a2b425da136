// strata::Error: every failure carries what went wrong and where (file, key, tensor,
// rank). main() catches it, prints it with the rank's grid coordinates and aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace strata {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string what) : std::runtime_error(std::move(what)) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Build an Error from pieces: throw make_error("file ", path, ": expected ", n).
template <class... Args>
Error make_error(Args&&... args) {
  return Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace strata

// Precondition check that throws strata::Error with the failed expression and a message.
#define STRATA_CHECK(cond, ...)                                                                            \
  do {                                                                                                     \
    if (!(cond))                                                                                           \
      throw ::strata::make_error(__VA_ARGS__, " [check '", #cond, "' failed at ", __FILE__, ":", __LINE__, \
                                 "]");                                                                     \
  } while (0)
