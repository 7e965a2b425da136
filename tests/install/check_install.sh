#!/usr/bin/env bash
# Installation and the exported CMake package (ctest install.package):
#   1. `cmake --install` the build into a temporary prefix, then MOVE the prefix elsewhere
#      (nothing may point back at the build or the source tree);
#   2. the moved binary, run from an empty folder, finds its configs relative to its prefix
#      (`strata plan --model gpt2_124m --gpu h100`) and, with STRATA_HOME, from another folder;
#   3. a separate CMake project does find_package(strata) from the moved prefix, links
#      strata::kernels and strata::config, builds and runs (a GEMM and a model config loaded
#      by name from the installed configs).
# usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
mv "$work/prefix" "$work/moved"
prefix="$work/moved"
for f in bin/strata include/strata/config.hpp include/strata/kernels/cpu/matmul.hpp \
         lib/cmake/strata/strataConfig.cmake share/strata/configs/models/gpt2_124m.yaml; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
echo "ok   installed and moved to $prefix"

mkdir "$work/empty" && cd "$work/empty"
unset STRATA_HOME STRATA_CONFIG_DIR
out=$("$prefix/bin/strata" plan --model gpt2_124m --gpu h100 --gpus 8 2>&1) ||
  { echo "FAIL: the moved binary did not find its configs: $out"; exit 1; }
grep -q "best:" <<<"$out" || { echo "FAIL: no plan printed: $out"; exit 1; }
echo "ok   moved binary finds share/strata/configs from an empty folder"

mkdir -p "$work/home" && cp -r "$prefix/share/strata/configs" "$work/home/" && mv "$prefix/share/strata" "$work/hidden"
if "$prefix/bin/strata" plan --model gpt2_124m --gpu h100 --gpus 8 >/dev/null 2>&1; then
  echo "FAIL: found configs although share/strata was moved away (a path compiled in?)"; exit 1
fi
STRATA_HOME="$work/home" "$prefix/bin/strata" plan --model gpt2_124m --gpu h100 --gpus 8 >/dev/null ||
  { echo "FAIL: STRATA_HOME=$work/home not used"; exit 1; }
mv "$work/hidden" "$prefix/share/strata"
echo "ok   without share/strata it finds nothing; STRATA_HOME points it elsewhere"

mkdir -p "$work/consumer"
cat >"$work/consumer/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.24)
project(strata_consumer LANGUAGES C CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(strata 0.1 REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE strata::kernels strata::config)
EOF
cat >"$work/consumer/main.cpp" <<'EOF'
// Uses the installed headers and libraries: a GEMM, and a model config found by name.
#include <cstdio>
#include "strata/config.hpp"
#include "strata/config/cluster.hpp"
#include "strata/config/load.hpp"
#include "strata/kernels/cpu/matmul.hpp"
int main() {
  const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  float c[4] = {};
  strata::kernels::cpu::gemm<float>(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
  const auto m = strata::config::load_model_config(strata::config::find_named_config("gpt2_124m", "models", "model"));
  std::printf("strata %s: c = %g %g %g %g, %s has %d layers\n", strata::build::version, c[0], c[1], c[2], c[3],
              m.name.c_str(), m.num_layers);
  return (c[0] == 19 && c[3] == 50 && m.num_layers == 12) ? 0 : 1;
}
EOF
cmake -S "$work/consumer" -B "$work/consumer/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; echo "FAIL: find_package(strata)"; exit 1; }
cmake --build "$work/consumer/build" >>"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; echo "FAIL: consumer build"; exit 1; }
# The consumer is not under <prefix>/bin, so it finds the configs through STRATA_HOME.
out=$(STRATA_HOME="$prefix/share/strata" "$work/consumer/build/consumer") || { echo "FAIL: consumer run: $out"; exit 1; }
echo "ok   find_package(strata) from the moved prefix: $out"
