#!/usr/bin/env bash
# Step time during a background checkpoint save (docs/checkpoints.md, "Asynchronous saves"):
# GPT-2 124M (1.49 GB of parameters and Adam moments) trained with `strata train` on the CPU,
# in rounds of three runs side by side, so machine load hits all alike:
#   none   ckpt.interval=0 (no save)
#   async  ckpt.interval=1 (a save every step, written in the background)
#   sync   ckpt.interval=1, ckpt.async=false (the step loop waits for each save)
# From each run's metrics.jsonl, for steps 2.. (step 1 warms up and overlaps no save), the time
# the training thread spent per step: step_ms + ckpt_ms (the snapshot copy and any wait for the
# previous save). Prints per-run medians, the ratios to `none` per round, and their spread.
#
#   benchmarks/ckpt_async.sh STRATA [ROUNDS] [STEPS] [THREADS] [-- extra --set options]
# Checkpoints go to $STRATA_BENCH_DIR (default /tmp/strata_bench_async; ~3 GB: keep 2).
set -euo pipefail
strata="$1"; rounds="${2:-3}"; steps="${3:-5}"; threads="${4:-2}"
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${STRATA_BENCH_DIR:-/tmp/strata_bench_async}"
mkdir -p "$dir"
run() {  # run NAME OUT_DIR [--set ...]
  local out="$2"; shift 2
  rm -rf "$out"
  OPENBLAS_NUM_THREADS="$threads" "$strata" train --config "$root/configs/demo.yaml" \
    --set model="$root/configs/models/gpt2_124m.yaml" --set data.source=synthetic --set data.datasets=[] \
    --set "data.tokenizer=''" --set data.valid_fraction=0 --set parallel.micro_batch_size=8 \
    --set parallel.global_batch_size=8 --set train.seq_len=256 --set train.steps="$steps" \
    --set hardware.threads="$threads" --set hardware.peak_tflops=1 --set eval.windows=0 \
    --set ckpt.save_at_end=false --set ckpt.keep=2 --set train.log_interval=1000 --set train.out_dir="$out" "$@" \
    >"$out.log" 2>&1
}
times() {  # times OUT_DIR: step_ms + ckpt_ms of steps >= 2, one per line
  python3 -c "
import json, sys
for line in open(sys.argv[1] + '/metrics.jsonl'):
    j = json.loads(line)
    if 'step_ms' in j and j['step'] >= 2: print(j['step_ms'] + j.get('ckpt_ms', 0))" "$1"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
saves() {  # saves LOG: the save durations the log reports, "10.2 9.8 ..."
  sed -n 's/.*checkpoint: step [0-9]* saved to .* in \([0-9.]*\) s, .*/\1/p' "$1" | tr '\n' ' '
}
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds x $steps steps, threads $threads"
: >"$dir/ratios"
for r in $(seq 1 "$rounds"); do
  run none "$dir/none$r" --set ckpt.interval=0 "$@"
  run async "$dir/async$r" --set ckpt.interval=1 "$@"
  run sync "$dir/sync$r" --set ckpt.interval=1 --set ckpt.async=false "$@"
  n=$(times "$dir/none$r" | median); a=$(times "$dir/async$r" | median); s=$(times "$dir/sync$r" | median)
  snap=$(python3 -c "
import json, statistics, sys
v = [json.loads(l).get('ckpt_ms', 0) for l in open(sys.argv[1]) if '\"step_ms\"' in l]
w = [json.loads(l).get('save_wait_ms', 0) for l in open(sys.argv[1]) if '\"step_ms\"' in l]
print(f'{statistics.median(v[1:]):.0f} ms (of it waiting {statistics.median(w[1:]):.0f} ms)')" "$dir/async$r/metrics.jsonl")
  echo "round $r: none $n ms, async $a ms, sync $s ms per step; async/none $(python3 -c "print(f'{$a / $n:.3f}')"),"\
       "sync/none $(python3 -c "print(f'{$s / $n:.3f}')"); async snapshot+wait median $snap; load $(cut -d' ' -f1 /proc/loadavg)"
  echo "  async saves (s): $(saves "$dir/async$r.log")"
  echo "  sync saves (s):  $(saves "$dir/sync$r.log")"
  echo "  steps (ms) none: $(times "$dir/none$r" | tr '\n' ' ')"
  echo "  steps (ms) async: $(times "$dir/async$r" | tr '\n' ' ')"
  echo "$a $n $s" >>"$dir/ratios"
done
python3 -c "
import statistics
rows = [tuple(map(float, l.split())) for l in open('$dir/ratios')]
a = sorted(r[0] / r[1] for r in rows); s = sorted(r[2] / r[1] for r in rows)
print(f'async/none median {statistics.median(a):.3f} (min {a[0]:.3f}, max {a[-1]:.3f}); '
      f'sync/none median {statistics.median(s):.3f} (min {s[0]:.3f}, max {s[-1]:.3f}) over {len(rows)} rounds')"
rm -rf "$dir"/none* "$dir"/async* "$dir"/sync*
