#!/usr/bin/env bash
# strata's own 8-rank runs for the planner comparison (docs/planner-validation.md, sec. 5):
# per layout, rank 0's planned bytes (its log's "rank 0 planned total"), rank 0's peak RSS
# (mem_bytes, max over steps), and the step time (median step_ms of the second half of the
# run), from the same layouts as benchmarks/layouts.sh. The predictions are printed by
#   build/tests/unit_plan --gtest_filter='PlanValidation.StrataEightRank*'
#   benchmarks/layouts_vs_plan.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"; steps="${2:-6}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
printf "| layout | schedule | planned (log) | peak RSS | step ms (median, 2nd half) | min step ms | MFU (median) | load before |\n|---|---|---|---|---|---|---|---|\n"
while read -r tp pp dp sched v zero sp cp mode; do
  cp="${cp:-1}" mode="${mode:-ring}"
  name="tp${tp}-pp${pp}-dp${dp}-cp$cp-$mode-$sched-v$v-z$zero-sp$sp"
  load=$(cut -d' ' -f1 /proc/loadavg)
  mpiexec -n 8 --oversubscribe "$build/strata" train --config "$root/configs/bench_layouts.yaml" \
    --set parallel.tp=$tp --set parallel.pp=$pp --set parallel.dp=$dp --set parallel.schedule=$sched \
    --set parallel.virtual_stages=$v --set parallel.zero_stage=$zero --set parallel.sequence_parallel=$sp \
    --set parallel.cp=$cp --set parallel.cp_mode=$mode --set train.steps=$steps --set "train.out_dir=$out/$name" </dev/null >"$out/$name.log" 2>&1
  python3 - "$out/$name/metrics.jsonl" "$out/$name.log" "$name" "$load" <<'PY'
import json, re, statistics, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step_ms" in r]  # step lines, not validation
log = open(sys.argv[2]).read()
m = re.search(r"rank 0 planned total: ([0-9.]+) (\w+)", log)
unit = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[m.group(2)]
planned = float(m.group(1)) * unit / 2**20
tail = rows[len(rows) // 2:]
step = statistics.median(r["step_ms"] for r in tail)
rss = max(r["mem_bytes"] for r in rows) / 2**20
print(f"| {sys.argv[3]} | | {planned:.2f} MiB | {rss:.1f} MiB | {step:.0f} | {min(r['step_ms'] for r in tail):.0f} | {100 * statistics.median(r['mfu'] for r in tail):.1f}% | {sys.argv[4]} |")
PY
done < <(grep -v "^#" "$root/benchmarks/layouts.txt")
