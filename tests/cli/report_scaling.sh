#!/usr/bin/env bash
# strata report scaling on hand-made run folders (no Slurm, no training): the files it writes,
# the efficiency arithmetic in them, the PNG when gnuplot is there, a clear "plot skipped" when
# it is not, and one-line errors for bad folders.
# usage: report_scaling.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
source "$src/tests/cli/lib.bash"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# Three runs of a fixed global batch (1024 tokens a step) at 1, 2, 4 ranks taking 100, 60 and
# 40 ms a step after a 1 s warm-up step: efficiency 1, (100/60)/2 = 0.8333, 2.5/4 = 0.625.
for r in 1 2 4; do
  d="$tmp/runs/r$r"; mkdir -p "$d"
  printf 'parallel:\n  tp: 1\n  pp: 1\n  dp: 0\ntrain:\n  seq_len: 64\n' >"$d/config.yaml"
  printf '{"job_id": "%d", "nodes": 1, "ranks": %d, "tag": "cli", "scaling": "strong"}\n' "$r" "$r" >"$d/job.json"
  ms=$(( r == 1 ? 100 : r == 2 ? 60 : 40 ))
  for s in 1 2 3 4 5; do
    t=$(( s == 1 ? 1000 : ms ))
    printf '{"step": %d, "loss": 3.0, "tokens_per_s": %s, "step_ms": %d, "tflops": 0.01, "mfu": 0.1}\n' \
      "$s" "$(python3 -c "print(1024 / ($t / 1000))")" "$t"
  done >"$d/metrics.jsonl"
done

check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

out=$("$strata" report scaling "$tmp/runs/r4" "$tmp/runs/r1" "$tmp/runs/r2" --out "$tmp/rep/scaling" 2>&1)
rc=$?
echo "$out"
check "exit 0" test $rc -eq 0
check "csv efficiencies 1, 0.8333, 0.625 by ranks" \
  test "$(cut -d, -f4,18 "$tmp/rep/scaling.csv" | tr '\n' ' ')" = "ranks,efficiency 1,1.0000 2,0.8333 4,0.6250 "
check "markdown table" grep -q "| r2  | 1     | 2     | tp1-pp1-dp2 | 16 .*| 83.3%      |" "$tmp/rep/scaling.md"
check "markdown printed" grep -q "## Scaling study: strong scaling" <<<"$out"
if command -v gnuplot >/dev/null; then
  check "png written" test "$(head -c 4 "$tmp/rep/scaling.png" | od -An -c | tr -d ' ')" = "211PNG"
else
  echo "(gnuplot not installed: the PNG check is left to the slurm test)"
fi

out=$("$strata" report scaling "$tmp/runs/r1" "$tmp/runs/r2" --out "$tmp/nogp/s" --gnuplot /no/such/gnuplot 2>&1)
rc=$?
check "no gnuplot: exit 0" test $rc -eq 0
check "no gnuplot: says the plot was skipped and why" grep -q "plot skipped: '/no/such/gnuplot' not found" <<<"$out"
check "no gnuplot: csv and md still written" test -s "$tmp/nogp/s.csv" -a -s "$tmp/nogp/s.md" -a ! -e "$tmp/nogp/s.png"

# A run that did not finish is listed, not reported, and does not stop the report.
d="$tmp/runs/broken"; mkdir -p "$d"
printf '{"job_id": "9", "nodes": 2, "ranks": 8, "log": "%s", "exit_code": 1}\n' "$tmp/broken.out" >"$d/job.json"
printf 'strata-slurm: job 9\nstrata: error (rank 0 of 8): parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (4 x 3 = 12)\n' \
  >"$tmp/broken.out"
out=$("$strata" report scaling "$tmp/runs/r1" "$tmp/runs/broken" "$tmp/runs/r2" --out "$tmp/rep2/s" 2>&1)
rc=$?
check "failed run: exit 0, the others reported" test $rc -eq 0 -a "$(tail -n +2 "$tmp/rep2/s.csv" | wc -l)" -eq 2
check "failed run: listed with the log's error" \
  grep -q "| broken *| 2 *| 8 *| failed *| .*config.yaml' is missing.*status 1 -- log: strata: error (rank 0 of 8): parallel.global_batch_size (16)" <<<"$out"
check "failed run: counted" grep -q "^2 finished runs reported, 1 point without a result" <<<"$out"

mkdir -p "$tmp/runs/empty"
expect_error "missing folder" "run folder '$tmp/runs/nothere' does not exist" report scaling "$tmp/runs/nothere"
expect_error "folder without config" "config.yaml' is missing" report scaling "$tmp/runs/empty"
[ "$failures" -eq 0 ]
