#!/usr/bin/env bash
# Bad input to `strata train`: each case must exit non-zero with a one-line error that names
# the problem — never a crash (signal), a hang or a stack of messages.
# usage: bad_config.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0

expect_error() {  # name, expected substring, args...
  local name="$1" want="$2"; shift 2
  local out rc
  out=$(timeout 60 "$strata" train "$@" 2>&1 >/dev/null); rc=$?
  local lines; lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
    echo "FAIL $name: exit code $rc (want 1..123)"; failures=$((failures + 1))
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: message lacks '$want': $out"; failures=$((failures + 1))
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL $name: $lines lines of error, want one: $out"; failures=$((failures + 1))
  else
    echo "ok   $name: $out"
  fi
}

good="$src/configs/test_tiny.yaml"
expect_error missing-file "no_such.yaml" --config "$tmp/no_such.yaml"
printf 'model:\n  num_layers: [1, 2\n' >"$tmp/malformed.yaml"
expect_error malformed-yaml "malformed.yaml" --config "$tmp/malformed.yaml"
printf 'model:\n  num_layer: 2\n' >"$tmp/unknown.yaml"
expect_error unknown-key "did you mean 'num_layers'" --config "$tmp/unknown.yaml"
printf 'model:\n  num_layers: two\n' >"$tmp/mistyped.yaml"
expect_error mistyped-key "model.num_layers" --config "$tmp/mistyped.yaml"
expect_error zero-size "model.d_model" --config "$good" --set model.d_model=0
expect_error negative-size "train.steps" --config "$good" --set train.steps=-5
expect_error heads-not-dividing "num_heads" --config "$good" --set model.num_heads=5
expect_error unknown-set-key "--set" --config "$good" --set model.widht=3
expect_error missing-data-file "/no/such/corpus.txt" --config "$good" --set data.source=text --set model.vocab_size=256 \
  --set "data.paths=[/no/such/corpus.txt]"

if [ $failures -ne 0 ]; then echo "$failures case(s) failed"; exit 1; fi
echo "all bad-config cases give one clear line and a non-zero exit"
