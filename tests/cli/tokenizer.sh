#!/usr/bin/env bash
# `strata tokenizer train` writes a tokenizer.json that `strata tokenizer encode` and `info`
# read back; a bad spec is a one-line error. Needs no downloaded files.
# usage: tokenizer.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

out=$(timeout 120 "$strata" tokenizer train --input /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
      --vocab-size 600 --output "$tmp/tokenizer.json" 2>&1) || fail "train: $out"
grep -q "vocab 600" <<<"$out" || fail "train summary lacks 'vocab 600': $out"
[ -s "$tmp/tokenizer.json" ] || fail "train wrote no tokenizer.json"

ids=$(timeout 60 "$strata" tokenizer encode --tokenizer "$tmp/tokenizer.json" --text "the License" 2>&1) || fail "encode: $ids"
[[ "$ids" =~ ^\[[0-9]+(,[0-9]+)*\]$ ]] || fail "encode output is not a list of ids: $ids"

info=$(timeout 60 "$strata" tokenizer info --tokenizer "$tmp/tokenizer.json" 2>&1) || fail "info: $info"
grep -q "eos_id 599" <<<"$info" || fail "info lacks 'eos_id 599': $info"

err=$(timeout 60 "$strata" tokenizer encode --tokenizer "$tmp/nope.json" --text x 2>&1 >/dev/null) && fail "bad spec exited 0"
grep -q "nope.json" <<<"$err" || fail "bad spec error does not name the file: $err"
[ "$(grep -c . <<<"$err")" -eq 1 ] || fail "bad spec: want one line of error, got: $err"

[ $failures -eq 0 ] && echo "tokenizer CLI: all checks passed"
exit $((failures > 0))
