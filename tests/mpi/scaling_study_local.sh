#!/usr/bin/env bash
# slurm/scaling_study.sh without Slurm (LOCAL=1, points run here with mpirun): strong scaling of
# configs/test_tiny.yaml (synthetic data) at 1, 2 and 3 ranks with a global batch of 16 in
# micro-batches of 8. The 3-rank point cannot split the batch: the planner's check refuses it
# before anything runs; the other two train, and the report has them, with the planner's
# predictions, and lists the refused point with its reason. The study exits 1 (a point did not run).
# usage: scaling_study_local.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$src"
failures=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
STRATA="$strata" STUDIES="$tmp" STUDY=local LOCAL=1 WAIT=1 RANKS_LIST="1 2 3" GPUS_PER_NODE=8 \
  SCRIPT=slurm/pretrain_tiny.sh CONFIG=configs/test_tiny.yaml GLOBAL_BATCH=16 STEPS=6 CLUSTER=local \
  timeout 240 bash slurm/scaling_study.sh >"$tmp/study.log" 2>&1
rc=$?
cat "$tmp/study.log"
study="$tmp/local"
check "exit 1: a point was refused" test $rc -eq 1
check "the 3-rank point refused before it ran" \
  grep -q "refused: batch: parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (8 x 3 = 24)" \
  "$study/points/local-n1r3.plan.txt"
check "no run of the refused point" bash -c "! ls -d '$study'/runs/local-n1r3* 2>/dev/null"
check "report: 1 and 2 ranks, with predictions" python3 - "$study/scaling.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["ranks"] for r in rows] == ["1", "2"], rows
assert all(r["global_batch"] == "16" and r["pred_step_ms"] and float(r["pred_step_ms"]) > 0 for r in rows), rows
assert all(0 < float(r["mfu"]) < 1 for r in rows), rows
PY
check "report: the refused point listed with its reason" \
  grep -q "^| local-n1r3 *| 1 *| 3 *| refused *| batch: parallel.global_batch_size (16)" "$study/scaling.md"
check "job.json of a local run has its exit code" grep -q '"exit_code": 0' "$study/runs/local-n1r2-local/job.json"
[ "$failures" -eq 0 ]
