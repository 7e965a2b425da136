#!/usr/bin/env bash
# strata report run on two short training runs (configs/test_tiny.yaml, 30 steps, validation
# every 10, two learning rates): the summary, the per-run CSV files, the PNG (when gnuplot is
# there), a clear "plot skipped" without it, and one-line errors for bad folders.
# usage: report_run.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
source "$src/tests/cli/lib.bash"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

for lr in 3e-3 1e-3; do
  out=$(timeout 120 "$strata" train --config "$src/configs/test_tiny.yaml" --set train.steps=30 --set eval.interval=10 \
    --set optim.lr=$lr --set ckpt.save_at_end=false --set train.out_dir="$tmp/runs/lr$lr" 2>&1) || { echo "train: $out"; exit 1; }
done

out=$(timeout 60 "$strata" report run "$tmp/runs/lr3e-3" "$tmp/runs/lr1e-3" --out "$tmp/rep/run" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] && ok "exit 0" || fail "exit $rc"
md="$tmp/rep/run.md"
grep -q "^| lr3e-3 | test_tiny | tp1-pp1-dp1 | 1-30  |" "$md" && ok "row of run 1" || fail "row 1: $(cat "$md")"
grep -q "^| lr1e-3 | test_tiny | tp1-pp1-dp1 | 1-30  |" "$md" && ok "row of run 2" || fail "row 2"
# The best validation loss of each run is the one metrics.jsonl holds for it.
for lr in 3e-3 1e-3; do
  want=$(python3 -c "
import json, sys
v = [json.loads(l) for l in open(sys.argv[1]) if 'valid_loss' in l]
b = min(v, key=lambda r: r['valid_loss']); print('%.4f (step %d)' % (b['valid_loss'], b['step']))" "$tmp/runs/lr$lr/metrics.jsonl")
  grep -qF "| $want |" "$md" && ok "lr $lr: best validation loss $want" || fail "lr $lr: no '$want' in $(cat "$md")"
done
[ "$(wc -l <"$tmp/rep/run.1.csv")" -eq 31 ] && [ "$(wc -l <"$tmp/rep/run.2.valid.csv")" -eq 4 ] && ok "csv lines" \
  || fail "csv: $(wc -l "$tmp"/rep/*.csv)"
if command -v gnuplot >/dev/null; then
  png="$tmp/rep/run.png"
  [ "$(head -c 4 "$png" | od -An -c | tr -d ' ')" = "211PNG" ] && ok "png written" || fail "no png"
  size=$(python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(24); print(*struct.unpack('>II', d[16:24]))" "$png")
  [ "$size" = "1400 1500" ] && ok "png 1400x1500" || fail "png size $size"
  grep -qF "![loss, learning rate" "$md" && ok "markdown shows the png" || fail "markdown lacks the png"
else
  echo "(gnuplot not installed: the PNG check is skipped)"
fi

out=$(timeout 60 "$strata" report run "$tmp/runs/lr1e-3" --out "$tmp/nogp/r" --gnuplot /no/such/gnuplot 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "plot skipped: '/no/such/gnuplot' not found" <<<"$out" && [ -s "$tmp/nogp/r.md" ] \
  && [ ! -e "$tmp/nogp/r.png" ] && ok "no gnuplot: markdown, plot skipped" || fail "no gnuplot: $rc $out"

mkdir -p "$tmp/runs/empty"
expect_error "missing folder" "run folder '$tmp/runs/nothere' does not exist" report run "$tmp/runs/nothere"
expect_error "folder without metrics" "metrics.jsonl' (a run folder holds metrics.jsonl" report run "$tmp/runs/empty"
[ $failures -eq 0 ] && echo "report run CLI: all checks passed"
exit $((failures > 0))
