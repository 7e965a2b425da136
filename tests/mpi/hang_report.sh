#!/usr/bin/env bash
# A rank that skips a collective, on 8 ranks (tp2 x pp2 x dp2, tests/mpi/hang_driver.cpp): the
# rank left waiting must report, within the watchdog timeout, the collective and its number,
# the group, its own grid coordinates, and the rank of the group that has not arrived with that
# rank's coordinates and progress; then the job must end (not hang).
# usage: hang_report.sh HANG_DRIVER_BINARY SOURCE_DIR
set -uo pipefail
driver="$1"
timeout_s=3
fail() { echo "FAIL: $*"; exit 1; }

start=$(date +%s.%N)
out=$(timeout 120 mpiexec -n 8 --oversubscribe "$driver" "$timeout_s" 2>&1); rc=$?
elapsed=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
echo "$out" | grep -E "watchdog|hang_driver" || true
echo "exit status $rc after ${elapsed} s (watchdog timeout ${timeout_s} s)"
[ $rc -ne 124 ] || fail "the job hung until the test's timeout"
[ $rc -ne 0 ] || fail "the job exited 0"
grep -q "hang_driver: the skipped collective did not end the job" <<<"$out" && fail "the driver ran past the hang"
report=$(grep "strata: watchdog" <<<"$out" | head -1)
[ -n "$report" ] || fail "no watchdog report: $out"
expect() { grep -qF -- "$1" <<<"$report" || fail "the report lacks '$1': $report"; echo "ok   $2"; }
expect "strata: watchdog (global rank 7 (tp 1/2, dp 1/2, pp 1/2))" "names this rank and its grid coordinates"
expect "all_reduce #4 on group 'dp' (2 ranks; this is dp rank 1)" "names the collective, its number and the group"
expect "not arrived: 1 of the 1 other ranks (dp rank 0 = global rank 5 (tp 1/2, dp 0/2, pp 1/2), last entered all_reduce #3)" \
  "names the rank that has not arrived, its coordinates and progress"
expect "did not complete within ${timeout_s} s" "says the timeout"
# Within the timeout: the report comes when it expires; the rest is the start-up of 8 ranks on
# a shared machine (a few seconds) and the job's teardown.
python3 -c "import sys; sys.exit(0 if $elapsed < $timeout_s + 60 else 1)" || fail "took ${elapsed} s"
echo "hang report: all checks passed"
