#!/usr/bin/env bash
# `strata plan --calibrate` on runs this test makes: five short single-rank runs of a tiny model
# at different widths and sequence lengths; the fit prints every run's residual and its
# leave-one-out error, writes a cluster file that loads back, and the planner runs on it.
# usage: plan_calibrate.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
cd "$src"
source "$(dirname "$0")/lib.bash"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

runs=()
for spec in "64 32" "128 32" "64 128" "128 128" "192 64"; do
  set -- $spec
  dir="$tmp/run-d$1-t$2"
  if ! timeout 120 "$strata" train --config configs/test_tiny.yaml --set train.steps=4 --set model.d_model=$1 \
      --set model.max_seq_len=$2 --set train.seq_len=$2 --set parallel.dp=1 --set hardware.threads=1 \
      --set eval.interval=0 --set ckpt.save_at_end=false --set "train.out_dir=$dir" >"$tmp/train.log" 2>&1; then
    echo "FAIL train d$1 t$2:"; tail -5 "$tmp/train.log"; exit 1
  fi
  runs+=("$dir")
done
# The same configuration twice is one run with two repeats.
cp -r "$tmp/run-d64-t32" "$tmp/run-d64-t32-again"; runs+=("$tmp/run-d64-t32-again")

out=$(timeout 120 "$strata" plan --calibrate "${runs[@]}" --gpu local --time cpu \
      --fit sustained_fraction,attention_fraction --out "$tmp/calibrated.yaml" --note "cli test" 2>&1); rc=$?
echo "$out"
check() {  # name, condition
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; failures=$((failures + 1)); fi
}
check calibrate-exit "[ $rc -eq 0 ]"
check calibrate-fitted "grep -q 'sustained_fraction: .* -> ' <<<\"\$out\""
check calibrate-loo "grep -q 'leave-one-out errors (each run predicted by a fit to the others)' <<<\"\$out\""
check calibrate-rows "[ \$(grep -c '^run-d' <<<\"\$out\") -eq 5 ]"
check calibrate-repeats "grep -q '^run-d64-t32 *2 ' <<<\"\$out\""
check calibrate-file "grep -q '^calibration: \"fitted sustained_fraction, attention_fraction to 5 runs' '$tmp/calibrated.yaml'"
expect_ok() {  # name, expected substring, args...
  local name="$1" want="$2"; shift 2
  local o r; o=$(timeout 60 "$strata" "$@" 2>&1); r=$?
  if [ $r -ne 0 ] || ! grep -qF -- "$want" <<<"$o"; then echo "FAIL $name: rc $r: $o"; failures=$((failures + 1)); else echo "ok   $name"; fi
}
expect_ok calibrated-plan "calibrated: fitted" plan --model tiny_gpt --gpu "$tmp/calibrated.yaml" --gpus 1 --global-batch 8 --seq-len 32
expect_error calibrate-unknown-key "not a calibratable constant" plan --calibrate "${runs[@]}" --gpu local --fit peak
expect_error calibrate-too-few "cannot determine 2 constants" plan --calibrate "${runs[0]}" --gpu local --time cpu --fit sustained_fraction,attention_fraction
if [ $failures -ne 0 ]; then echo "$failures case(s) failed"; exit 1; fi
echo "plan --calibrate ok"
