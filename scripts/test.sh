#!/usr/bin/env bash
# The single test entry point (CI runs it through .ci/run): install what is missing, build
# everything (CUDA files too where nvcc exists), run every test with ctest. Exits non-zero
# on any failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
# Open MPI refuses to run as root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Two cores: tests run two at a time, each with one BLAS thread (ranks x threads <= cores).
export OPENBLAS_NUM_THREADS=1

start=$(date +%s)
bash scripts/build.sh
echo "test.sh: build took $(( $(date +%s) - start )) s"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j2 --timeout 900 "$@"
echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
