#!/usr/bin/env bash
# strata ckpt verify on checkpoints written by strata train (configs/test_tiny.yaml, 3 steps, one
# checkpoint per step): all intact (exit 0); then a flipped byte in the newest and a truncated
# second one: each reported with the file and the tensor or the truncation, the newest intact one
# named, exit 2; the same verdicts with the reading split over 2 ranks; one checkpoint file alone.
# usage: ckpt_verify.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
source "$src/tests/cli/lib.bash"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

out=$(timeout 120 "$strata" train --config "$src/configs/test_tiny.yaml" --set train.steps=3 --set ckpt.interval=1 \
  --set ckpt.keep=0 --set eval.windows=0 --set train.out_dir="$tmp/run" 2>&1) || { echo "train failed: $out"; exit 1; }
ck="$tmp/run/checkpoints"

out=$(timeout 60 "$strata" ckpt verify "$ck" 2>&1); rc=$?
[ $rc -eq 0 ] && ok "intact: exit 0" || fail "intact: exit $rc: $out"
grep -q "0 of 3 checkpoints damaged; newest intact: step_00000003.h5" <<<"$out" && ok "intact: summary" || fail "summary: $out"
[ "$(grep -c '^  ok       step_0000000[123].h5  step [123], 108 tensors' <<<"$out")" -eq 3 ] && ok "intact: one line each" \
  || fail "lines: $out"

# Damage: one bit of /optim/exp_avg/layers.1.mlp.fc.weight in the newest; the second cut short.
off=$(h5dump -p -H -d /optim/exp_avg/layers.1.mlp.fc.weight "$ck/step_00000003.h5" | awk '/OFFSET/ {print $2}')
[ -n "$off" ] || { echo "no dataset offset from h5dump"; exit 1; }
python3 -c "
import sys; p, at = sys.argv[1], int(sys.argv[2]) + 1000
b = bytearray(open(p, 'rb').read()); b[at] ^= 0x10; open(p, 'wb').write(b)" "$ck/step_00000003.h5" "$off"
truncate -s 600000 "$ck/step_00000002.h5"
check_damaged() {  # check_damaged LABEL OUTPUT RC
  [ "$3" -eq 2 ] && ok "$1: exit 2" || fail "$1: exit $3: $2"
  grep -qF "DAMAGED  step_00000003.h5  step 3, 1 problem" <<<"$2" && ok "$1: newest damaged" || fail "$1: $2"
  grep -qF "checkpoint '$ck/step_00000003.h5': tensor /optim/exp_avg/layers.1.mlp.fc.weight fails its checksum" <<<"$2" \
    && ok "$1: names the file and tensor" || fail "$1: tensor not named: $2"
  grep -qF "checkpoint '$ck/step_00000002.h5' cannot be opened (truncated" <<<"$2" && ok "$1: truncation named" \
    || fail "$1: truncation: $2"
  grep -qF "2 of 3 checkpoints damaged; newest intact: step_00000001.h5 (train.resume=auto resumes from it)" <<<"$2" \
    && ok "$1: newest intact named" || fail "$1: summary: $2"
}
out=$(timeout 60 "$strata" ckpt verify "$ck" 2>&1); check_damaged "damaged" "$out" $?
out=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" ckpt verify "$ck" 2>/dev/null); check_damaged "2 ranks" "$out" $?
grep -q "reading split over 2 ranks" <<<"$out" && ok "2 ranks: split" || fail "2 ranks: $out"

json=$(timeout 60 "$strata" ckpt verify --json "$ck" 2>&1)
python3 -c "
import json, sys; j = json.loads(sys.argv[1])
assert j['damaged'] == 2 and j['newest_intact'].endswith('step_00000001.h5'), j
c = {x['step']: x for x in j['checkpoints']}
assert c[3]['bad_tensors'] == 1 and c[3]['tensors'] == 108 and not c[3]['intact'], c[3]
assert c[1]['intact'] and c[1]['problems'] == []" "$json" && ok "json" || fail "json: $json"

out=$(timeout 60 "$strata" ckpt verify "$ck/step_00000001.h5" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "0 of 1 checkpoint damaged" <<<"$out" && ok "one file" || fail "one file: $rc $out"
mkdir -p "$tmp/empty"
expect_error "folder without checkpoints" "holds no checkpoint (no step_<N>.h5 files)" ckpt verify "$tmp/empty"
expect_error "missing path" "does not exist" ckpt verify "$tmp/nothere"

[ $failures -eq 0 ] && echo "ckpt verify CLI: all checks passed"
exit $((failures > 0))
