#!/usr/bin/env bash
# Fault hooks live only in the test binary (core/faults.hpp): `strata` ignores the fault
# variables — a 1-step run with STRATA_INJECT_FAILURE aimed at it, and malformed
# STRATA_TEST_BAD_BATCHES and STRATA_TEST_SAVE_PAUSE, succeeds — while strata-faults honours
# them (the same run fails with the injected error) and rejects malformed values by name.
# usage: fault_hooks.sh STRATA_BINARY SOURCE_DIR FAULTS_BINARY
set -uo pipefail
strata="$1"; src="$2"; faults="$3"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
run() {  # run BINARY NAME: a 1-step train of the tiny model, output in $tmp/NAME.log
  timeout 60 "$1" train --config "$src/configs/test_tiny.yaml" --set train.steps=1 --set eval.windows=0 \
    --set hardware.peak_tflops=1 --set "train.out_dir=$tmp/$2" >"$tmp/$2.log" 2>&1
}

export STRATA_INJECT_FAILURE="rank=0,step=1"
STRATA_TEST_BAD_BATCHES="malformed" STRATA_TEST_SAVE_PAUSE="malformed" run "$strata" production
rc=$?
if [ $rc -ne 0 ]; then fail "strata read a fault variable: exit $rc: $(tail -n 3 "$tmp/production.log")"
elif [ "$(grep -c '"loss"' "$tmp/production/metrics.jsonl")" -ne 1 ]; then fail "strata did not train its step"
else echo "ok   strata ignores STRATA_INJECT_FAILURE, STRATA_TEST_BAD_BATCHES, STRATA_TEST_SAVE_PAUSE"
fi

run "$faults" injected
rc=$?
if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then fail "strata-faults: exit $rc, want the injected failure"
elif ! grep -q "strata: error (rank 0 of 1): .* injected failure at step 1" "$tmp/injected.log"; then
  fail "strata-faults: no injected failure: $(tail -n 3 "$tmp/injected.log")"
else echo "ok   strata-faults: $(grep 'injected failure' "$tmp/injected.log")"
fi
unset STRATA_INJECT_FAILURE

# Malformed values: exit 2 before anything runs, the variable and the expected form named.
for var in STRATA_INJECT_FAILURE STRATA_TEST_BAD_BATCHES STRATA_TEST_SAVE_PAUSE; do
  out=$(env "$var=rank=x" timeout 20 "$faults" info 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 2 ]; then fail "$var=rank=x: exit $rc, want 2"
  elif ! grep -qF "strata-faults: error: $var='rank=x': expected" <<<"$out"; then fail "$var=rank=x: $out"
  else echo "ok   $out"
  fi
done

[ "$failures" -eq 0 ] && echo "fault hooks ok" || { echo "$failures failure(s)"; exit 1; }
