// Where strata finds the files it ships (configs/, tokenizer files), without a path compiled
// into the binary, so an installed tree can be moved (relocatable) and a build tree works.
#pragma once
#include <filesystem>
#include <vector>

namespace strata {

// Folders that may hold strata's shipped files, in the order they are searched:
//   1. $STRATA_HOME, when set (a folder holding configs/ and tokenizers/);
//   2. <prefix>/share/strata, where the running program is <prefix>/bin/<program> (an
//      installed tree: `cmake --install`, wherever the prefix was moved to);
//   3. the running program's folder and up to three folders above it: a build tree
//      (build/strata, build/tests/unit_plan) finds the source tree it sits in, or the links
//      to configs/ and .cache/ that CMake puts in every build folder.
// Only folders that exist are returned.
std::vector<std::filesystem::path> resource_roots();

// The running program (/proc/self/exe), or an empty path where it cannot be read.
std::filesystem::path executable_path();

}  // namespace strata
