#!/usr/bin/env bash
# The single test entry point (CI runs it through .ci/run): install what is missing, build,
# run the tests with ctest. Exits non-zero on any failure.
#
#   scripts/test.sh [CTEST_ARGS...]             everything (CUDA files too where nvcc exists) in
#                                               ${BUILD_DIR:-build}/, for the default CPU target
#                                               (x86-64-v3 on x86: AVX2, no AVX-512), every test
#   scripts/test.sh --sanitize [CTEST_ARGS...]  AddressSanitizer + UndefinedBehaviorSanitizer
#                                               build in ${BUILD_DIR:-build-sanitize}/ for an
#                                               older CPU target (x86-64-v2: SSE4.2, no AVX, no
#                                               FMA), -O1, CUDA and benchmarks off; runs the
#                                               unit and mpi tests under the sanitizers
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sanitize=0
if [ "${1:-}" = "--sanitize" ]; then sanitize=1; shift; fi

bash scripts/install-deps.sh
# Open MPI refuses to run as root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Two cores: tests run two at a time, each with one BLAS thread and one kernel (OpenMP)
# thread (ranks x threads <= cores); tests of the threaded paths set their own counts.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

start=$(date +%s)
if [ $sanitize -eq 1 ]; then
  export BUILD_DIR="${BUILD_DIR:-$root/build-sanitize}"
  target=generic
  [ "$(uname -m)" = x86_64 ] && target=x86-64-v2
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then  # configured here (flags with spaces), built by build.sh
    cmake -S "$root" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" \
      "-DCMAKE_C_FLAGS_DEBUG=-O1 -g1" -DSTRATA_SANITIZE=address,undefined -DSTRATA_CPU_TARGET=$target \
      -DSTRATA_CUDA=OFF -DSTRATA_BENCHMARKS=OFF ${STRATA_CMAKE_ARGS:-}
  fi
  # Leaks inside Open MPI, hwloc and OpenBLAS's thread pool are theirs (tests/sanitizers/lsan.supp).
  # Open MPI unloads its components at exit, so their leaks only match a suppression through
  # the libmpi / libopen-pal frames that called them: the slow unwinder (fast_unwind_on_malloc=0)
  # records those frames, the default frame-pointer one stops in the first library built
  # without frame pointers. Every sanitizer report stops the test that caused it.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}"
  export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizers/ubsan.supp:${UBSAN_OPTIONS:-}"
fi
bash scripts/build.sh
echo "test.sh: build took $(( $(date +%s) - start )) s"
cd "${BUILD_DIR:-$root/build}"
if [ $sanitize -eq 1 ]; then
  # Left out here (they run in the normal build): the planner's exhaustive layout searches and
  # the scripts that start the binary hundreds of times for them (plan, dry-run of every config
  # and printed layout, the Slurm scripts' launch lines). Pure arithmetic over configs at -O1
  # with ASan: 2-8 minutes each, 1,250 of the sanitizer run's 2,075 test-seconds; the code they
  # run is under the sanitizers in the plan and config unit tests.
  ctest --output-on-failure -j2 --timeout 900 -L "unit|mpi" \
    -E '^(cli\.(plan|dry_run|slurm_scripts)|plan\.PlanSearch\.(TooFewGpusSaysHowManyAreNeeded|BestLayoutFitsAndIsFastest))$' "$@"
  echo "test.sh: sanitizer build and tests passed in $(( $(date +%s) - start )) s"
else
  ctest --output-on-failure -j2 --timeout 900 "$@"
  echo "test.sh: all tests passed in $(( $(date +%s) - start )) s"
fi
