#!/usr/bin/env bash
# Configure and build strata into ${BUILD_DIR:-build}. Extra arguments go to ninja
# (e.g. a target name). CMake options through STRATA_CMAKE_ARGS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${STRATA_CMAKE_ARGS:-}
fi
ninja -C "$build" "$@"
