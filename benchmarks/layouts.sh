#!/usr/bin/env bash
# A training step per layout on 8 ranks, with the time breakdown from the trainer's own
# metrics of rank 0 (second half of each run): step time, tokens/s, compute (forward and
# backward kernels), waiting on pipeline neighbours, waiting on DP reduction and the
# parameter all-gather, the schedule's bubble fraction; beside them the planner's prediction
# for the same layout on this machine (`strata plan --config`, cluster local, the 8 ranks on
# one node sharing its cores): its step time and its bubble over the ideal compute time
# (zb_h1: with the F, B, W split of docs/planner.md).
#   benchmarks/layouts.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"; steps="${2:-8}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
printf "| layout | schedule | step ms | tokens/s | compute ms | pipeline wait ms | DP wait ms | bubble | optimizer state/rank | planned step ms | planned bubble |\n"
printf "|---|---|---|---|---|---|---|---|---|---|---|\n"
while read -r tp pp dp sched v zero sp cp mode; do
  cp="${cp:-1}"        # the optional 8th column: context parallelism
  mode="${mode:-ring}" # the optional 9th: its mode (ring | ulysses)
  name="tp${tp}-pp${pp}-dp${dp}"
  [ "$cp" -gt 1 ] && name="$name-cp$cp"
  [ "$mode" = ulysses ] && name="$name-ulysses"
  set_args=(--set parallel.tp=$tp --set parallel.pp=$pp --set parallel.dp=$dp --set parallel.schedule=$sched
    --set parallel.virtual_stages=$v --set parallel.zero_stage=$zero --set parallel.sequence_parallel=$sp
    --set parallel.cp=$cp --set parallel.cp_mode=$mode)
  mpiexec -n 8 --oversubscribe "$build/strata" train --config "$root/configs/bench_layouts.yaml" "${set_args[@]}" \
    --set train.steps=$steps --set "train.out_dir=$out/$name-$sched" </dev/null >/dev/null 2>&1
  "$build/strata" plan --config "$root/configs/bench_layouts.yaml" --gpus 8 --gpus-per-node 8 --cluster local \
    "${set_args[@]}" --json >"$out/$name-$sched.plan.json" 2>/dev/null || true
  python3 - "$out/$name-$sched/metrics.jsonl" "$name" "$sched v$v zero$zero sp=$sp" "$out/$name-$sched.plan.json" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step_ms" in r]  # step lines, not validation
tail = rows[len(rows) // 2:]
m = lambda k: sum(r[k] for r in tail) / len(tail)
try:
    t = json.load(open(sys.argv[4]))["prediction"]["time_s"]
    plan = f"{1e3 * t['step']:.0f} | {t['bubble'] / (t['compute'] + t['tp_comm']):.2f}"
except (OSError, ValueError, KeyError):
    plan = "- | -"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {m('step_ms'):.0f} | {m('tokens_per_s'):.0f} | {m('compute_ms'):.0f} | {m('pipeline_wait_ms'):.0f} | "
      f"{m('dp_wait_ms'):.0f} | {tail[-1]['bubble_fraction']:.2f} | {tail[-1]['optimizer_state_bytes'] / 2**20:.1f} MiB | {plan} |")
PY
done < <(grep -v "^#" "$root/benchmarks/layouts.txt")
