#!/usr/bin/env bash
# One failing rank ends the whole job (DESIGN.md invariant 5): rank 5 of 8 throws at step 2;
# the job must exit non-zero within seconds (not hang until the watchdog or the test timeout),
# and the error must name the rank and its grid coordinates. The failure is injected by the
# test-only binary strata-faults (tests/tools/strata_faults.cpp).
# usage: failing_rank.sh STRATA_BINARY SOURCE_DIR FAULTS_BINARY
set -uo pipefail
faults="$3"; src="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
STRATA_INJECT_FAILURE="rank=5,step=2" timeout 120 mpiexec -n 8 --oversubscribe "$faults" train \
  --config "$src/configs/test_tiny.yaml" --set train.steps=5 --set parallel.tp=2 --set parallel.pp=2 \
  --set "train.out_dir=$tmp/run" >"$tmp/out.txt" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$tmp/out.txt" | grep -v "^  " | tail -n 15
if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then echo "FAIL: exit code $rc (0 = not aborted, 124 = hung)"; exit 1; fi
grep -q "strata: error (rank 5 of 8): \[tp 1/2, dp 0/2, pp 1/2\] injected failure at step 2" "$tmp/out.txt" ||
  { echo "FAIL: the error does not name rank 5 and its coordinates"; exit 1; }
echo "ok: job aborted with exit code $rc after ${elapsed} s, naming rank 5 (tp 1/2, dp 0/2, pp 1/2)"
