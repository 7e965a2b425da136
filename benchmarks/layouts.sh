#!/usr/bin/env bash
# A training step per layout on 8 ranks, with the time breakdown from the trainer's own
# metrics of rank 0 (second half of each run): step time, tokens/s, compute (forward and
# backward kernels), waiting on pipeline neighbours, waiting on DP reduction and the
# parameter all-gather, the schedule's bubble fraction; beside the step time, the planner's
# prediction for the layout on this machine (strata plan --explain LAYOUT --cluster local
# --ranks-per-node 8, the model, batch and sequence of configs/bench_layouts.yaml: its "total"
# step time, the shared cores' node work included).
#   benchmarks/layouts.sh [BUILD_DIR] [STEPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"; steps="${2:-8}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
printf "| layout | schedule | step ms | plan step ms | tokens/s | compute ms | pipeline wait ms | DP wait ms | bubble | optimizer state/rank |\n"
printf "|---|---|---|---|---|---|---|---|---|---|\n"
while read -r tp pp dp sched v zero sp; do
  name="tp${tp}-pp${pp}-dp${dp}"
  mpiexec -n 8 --oversubscribe "$build/strata" train --config "$root/configs/bench_layouts.yaml" \
    --set parallel.tp=$tp --set parallel.pp=$pp --set parallel.dp=$dp --set parallel.schedule=$sched \
    --set parallel.virtual_stages=$v --set parallel.zero_stage=$zero --set parallel.sequence_parallel=$sp \
    --set train.steps=$steps --set "train.out_dir=$out/$name-$sched-z$zero-sp$sp" </dev/null >/dev/null 2>&1
  sp_part=""; gpipe_part=""
  if [ "$sp" = true ]; then sp_part="-sp"; fi
  if [ "$sched" = gpipe ]; then gpipe_part="-gpipe"; fi
  layout="$name-v$v-mb2-z$zero$sp_part-rnone$gpipe_part"
  "$build/strata" plan --model bench_layouts --cluster local --gpus 8 --ranks-per-node 8 --global-batch 16 \
    --seq-len 128 --recompute none --explain "$layout" </dev/null >"$out/$name-$sched-$zero.plan" 2>&1 || true
  python3 - "$out/$name-$sched-z$zero-sp$sp/metrics.jsonl" "$name" "$sched v$v zero$zero sp=$sp" "$out/$name-$sched-$zero.plan" <<'PY'
import json, re, sys
t = re.search(r"^  total\s+([0-9.]+) (us|ms|s)$", open(sys.argv[4]).read(), re.M)
plan = float(t.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[t.group(2)] if t else float("nan")
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step_ms" in r]  # step lines, not validation
tail = rows[len(rows) // 2:]
m = lambda k: sum(r[k] for r in tail) / len(tail)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {m('step_ms'):.0f} | {plan:.0f} | {m('tokens_per_s'):.0f} | {m('compute_ms'):.0f} | {m('pipeline_wait_ms'):.0f} | "
      f"{m('dp_wait_ms'):.0f} | {tail[-1]['bubble_fraction']:.2f} | {tail[-1]['optimizer_state_bytes'] / 2**20:.1f} MiB |")
PY
done < <(grep -v "^#" "$root/benchmarks/layouts.txt")
