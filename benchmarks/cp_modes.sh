#!/usr/bin/env bash
# Context parallelism's two modes side by side on 8 ranks (configs/bench_layouts.yaml: 8
# layers, width 256, 8 heads, 16 sequences of 128 tokens per step): for each cp layout, the
# ring (parallel.cp_mode: ring) and Ulysses (ulysses), run alternately for ROUNDS rounds so a
# loaded machine's drift hits both; each run's mean step time over the second half of STEPS
# steps (rank 0's metrics), beside the planner's prediction for the same layout and mode
# (`strata plan --config`, cluster local, the 8 ranks on one node sharing its cores).
#   benchmarks/cp_modes.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"; steps="${2:-8}"; rounds="${3:-2}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
layouts=("8 1" "2 4" "4 2")  # cp dp (tp 1, pp 1)
for round in $(seq "$rounds"); do
  for l in "${layouts[@]}"; do
    read -r cp dp <<<"$l"
    for mode in ring ulysses; do
      name="cp$cp-dp$dp-$mode"
      args=(--set parallel.cp=$cp --set parallel.dp=$dp --set parallel.cp_mode=$mode --set parallel.zero_stage=1)
      mpiexec -n 8 --oversubscribe "$build/strata" train --config "$root/configs/bench_layouts.yaml" "${args[@]}" \
        --set train.steps=$steps --set "train.out_dir=$out/$name-$round" </dev/null >/dev/null 2>&1
      [ "$round" = 1 ] && "$build/strata" plan --config "$root/configs/bench_layouts.yaml" --gpus 8 \
        --gpus-per-node 8 --cluster local "${args[@]}" --json >"$out/$name.plan.json" 2>/dev/null || true
      python3 - "$out/$name-$round/metrics.jsonl" >>"$out/$name.ms" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step_ms" in r]
tail = rows[len(rows) // 2:]
print(f"{sum(r['step_ms'] for r in tail) / len(tail):.0f}")
PY
    done
  done
done
printf "| layout | mode | step ms (each round) | planned step ms |\n|---|---|---|---|\n"
for l in "${layouts[@]}"; do
  read -r cp dp <<<"$l"
  for mode in ring ulysses; do
    name="cp$cp-dp$dp-$mode"
    python3 - "$out/$name.plan.json" "tp1-pp1-dp$dp-cp$cp" "$mode" "$(paste -sd' ' "$out/$name.ms")" <<'PY'
import json, sys
try:
    t = json.load(open(sys.argv[1]))["prediction"]["time_s"]
    plan = f"{1e3 * t['step']:.0f}"
except (OSError, ValueError, KeyError):
    plan = "-"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {plan} |")
PY
  done
done
