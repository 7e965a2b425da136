#!/usr/bin/env bash
# Bad input to `strata train`: each case must exit non-zero with a one-line error that names
# the problem — never a crash (signal), a hang or a stack of messages.
# usage: bad_config.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.bash"


good="$src/configs/test_tiny.yaml"
expect_error missing-file "no_such.yaml" train --config "$tmp/no_such.yaml"
printf 'model:\n  num_layers: [1, 2\n' >"$tmp/malformed.yaml"
expect_error malformed-yaml "malformed.yaml" train --config "$tmp/malformed.yaml"
printf 'model:\n  num_layer: 2\n' >"$tmp/unknown.yaml"
expect_error unknown-key "did you mean 'num_layers'" train --config "$tmp/unknown.yaml"
printf 'model:\n  num_layers: two\n' >"$tmp/mistyped.yaml"
expect_error mistyped-key "model.num_layers" train --config "$tmp/mistyped.yaml"
expect_error zero-size "model.d_model" train --config "$good" --set model.d_model=0
expect_error negative-size "train.steps" train --config "$good" --set train.steps=-5
expect_error heads-not-dividing "num_heads" train --config "$good" --set model.num_heads=5
expect_error unknown-set-key "--set" train --config "$good" --set model.widht=3
expect_error missing-data-file "/no/such/corpus.txt" train --config "$good" --set data.source=text --set model.vocab_size=256 \
  --set "data.paths=[/no/such/corpus.txt]"

if [ $failures -ne 0 ]; then echo "$failures case(s) failed"; exit 1; fi
echo "all bad-config cases give one clear line and a non-zero exit"
