// Start-up check that this CPU can run the instructions the binary was compiled for
// (STRATA_CPU_TARGET): on a cluster the build often happens on a login node whose CPU differs
// from the compute nodes'. Without the check, a binary built for x86-64-v4 or `native` dies
// with SIGILL somewhere in the first kernel; with it, it stops with one line naming the
// missing features and the option to rebuild with.
//
// The check is a constructor that runs before main() and before the C++ static initialisers
// of the program (priority 101), in a file compiled for the x86-64 baseline (CMakeLists.txt),
// so nothing compiled for the target has run yet. It uses only C library calls: an inline C++
// function shared with other files could be the linker's copy compiled for the target. x86 only: Arm's -mcpu
// targets are checked by the loader's HWCAP tests in the libraries that use them, and a mismatch is rarer
// there.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "strata/config.hpp"

#if defined(__x86_64__)
namespace {

__attribute__((constructor(101))) void strata_check_cpu_features() {
  __builtin_cpu_init();  // constructors may run before libgcc's own initialisation
  char missing[512] = "";
#define STRATA_CHECK_FEATURE(name)                                                          \
  if (!__builtin_cpu_supports(name)) {                                                      \
    if (missing[0]) std::strncat(missing, ", ", sizeof missing - std::strlen(missing) - 1); \
    std::strncat(missing, name, sizeof missing - std::strlen(missing) - 1);                 \
  }
  STRATA_FOR_EACH_CPU_FEATURE(STRATA_CHECK_FEATURE)
#undef STRATA_CHECK_FEATURE
  if (!missing[0]) return;
  std::fprintf(stderr,
               "strata: error: this binary was built with STRATA_CPU_TARGET=%s (%s) but this CPU lacks %s; "
               "rebuild for the machine that runs it, e.g. -DSTRATA_CPU_TARGET=x86-64-v3 "
               "(docs/running-on-clusters.md)\n",
               strata::build::cpu_target, strata::build::cpu_flags, missing);
  std::_Exit(1);
}

}  // namespace
#endif
