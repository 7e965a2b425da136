#!/usr/bin/env bash
# Step time during a background checkpoint save (docs/checkpoints.md, "Asynchronous saves"):
# GPT-2 124M (1.49 GB of parameters and Adam moments) trained with `strata train` on the CPU
# (micro-batch 8 x 256 tokens), in rounds of runs side by side, so machine load hits all alike:
#   none   ckpt.interval=0: no save
#   async  ckpt.interval=1: a save every step, written in the background
#   pairs  ckpt.interval=2, background saves: consecutive steps, the first running while the
#          previous step's save is written ("saving": 1 in metrics.jsonl), the second without
#          one — the same load on both, so their ratio is the least noisy measure here
#   sync   ckpt.interval=1, ckpt.async=false: the step loop waits for each save
# Per step it counts the training thread's time: step_ms + ckpt_ms (the snapshot copy and any
# wait for the previous save; a synchronous save entirely), for steps 3.. (step 1 warms up,
# step 2 pays the first save's page faults). Prints each run's median, the ratios to `none`
# per round, the pairs' ratios, and their spread.
#
#   benchmarks/ckpt_async.sh STRATA [ROUNDS] [STEPS] [THREADS] [-- extra --set options]
# Checkpoints go to $STRATA_BENCH_DIR (default /tmp/strata_bench_async; ~3 GB: keep 2).
set -euo pipefail
strata="$1"; rounds="${2:-3}"; steps="${3:-6}"; threads="${4:-2}"
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${STRATA_BENCH_DIR:-/tmp/strata_bench_async}"
mkdir -p "$dir"
run() {  # run OUT_DIR STEPS [--set ...]
  local out="$1" n="$2"; shift 2
  rm -rf "$out"
  OPENBLAS_NUM_THREADS="$threads" "$strata" train --config "$root/configs/demo.yaml" \
    --set model="$root/configs/models/gpt2_124m.yaml" --set data.source=synthetic --set data.datasets=[] \
    --set "data.tokenizer=''" --set data.valid_fraction=0 --set parallel.micro_batch_size=8 \
    --set parallel.global_batch_size=8 --set train.seq_len=256 --set train.steps="$n" \
    --set hardware.threads="$threads" --set hardware.peak_tflops=1 --set eval.windows=0 \
    --set ckpt.save_at_end=false --set ckpt.keep=2 --set train.log_interval=1000 --set train.out_dir="$out" "$@" \
    >"$out.log" 2>&1
}
stats() {  # stats OUT_DIR...: per run "median_ms ckpt_ms wait_ms", then pair ratios "p:..."
  python3 - "$@" <<'EOF'
import json, statistics, sys
for d in sys.argv[1:]:
    s = [j for j in map(json.loads, open(d + '/metrics.jsonl')) if 'step_ms' in j]
    t = [j['step_ms'] + j.get('ckpt_ms', 0) for j in s if j['step'] >= 3]
    c = [j.get('ckpt_ms', 0) for j in s if j['step'] >= 3]
    w = [j.get('save_wait_ms', 0) for j in s if j['step'] >= 3]
    pairs = [a['step_ms'] / b['step_ms'] for a, b in zip(s, s[1:])
             if a['step'] >= 3 and a.get('saving') == 1 and b.get('saving') == 0]
    print(f"{statistics.median(t):.0f} {statistics.median(c):.0f} {statistics.median(w):.0f}",
          ' '.join(f'{p:.3f}' for p in pairs))
EOF
}
saves() { sed -n 's/.*checkpoint: step [0-9]* saved to .* in \([0-9.]*\) s, .*/\1/p' "$1" | awk '{printf "%.1f ", $1}'; }
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds, $steps steps" \
     "(pairs: $((2 * steps - 1))), BLAS threads $threads; $("$strata" --version 2>/dev/null | head -1)"
: >"$dir/summary"
for r in $(seq 1 "$rounds"); do
  run "$dir/none$r" "$steps" --set ckpt.interval=0 "$@"
  run "$dir/async$r" "$steps" --set ckpt.interval=1 "$@"
  run "$dir/pairs$r" $((2 * steps - 1)) --set ckpt.interval=2 "$@"
  run "$dir/sync$r" "$steps" --set ckpt.interval=1 --set ckpt.async=false "$@"
  mapfile -t st < <(stats "$dir/none$r" "$dir/async$r" "$dir/pairs$r" "$dir/sync$r")
  read -r n _ _ <<<"${st[0]}"; read -r a ac aw <<<"${st[1]}"; read -r s _ _ <<<"${st[3]}"
  echo "round $r (load $(cut -d' ' -f1 /proc/loadavg)): median ms per step: none $n, async $a (checkpoint $ac, of it" \
       "waiting $aw), sync $s; async/none $(python3 -c "print(f'{$a / $n:.3f}')"), sync/none" \
       "$(python3 -c "print(f'{$s / $n:.3f}')"); pairs (during a save / the next step without): ${st[2]#* * * }"
  echo "  save seconds: async $(saves "$dir/async$r.log")| pairs $(saves "$dir/pairs$r.log")| sync $(saves "$dir/sync$r.log")"
  echo "$a $n $s ${st[2]#* * * }" >>"$dir/summary"
done
python3 - "$dir/summary" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
a = sorted(float(r[0]) / float(r[1]) for r in rows)
s = sorted(float(r[2]) / float(r[1]) for r in rows)
p = sorted(float(x) for r in rows for x in r[3:])
print(f"async/none median {statistics.median(a):.3f} (min {a[0]:.3f}, max {a[-1]:.3f}); "
      f"sync/none median {statistics.median(s):.3f} (min {s[0]:.3f}, max {s[-1]:.3f}) over {len(rows)} rounds")
if p:
    print(f"pairs: step during a background save / next step without: median {statistics.median(p):.3f} "
          f"(min {p[0]:.3f}, max {p[-1]:.3f}, {len(p)} pairs)")
EOF
rm -rf "$dir"/none* "$dir"/async* "$dir"/pairs* "$dir"/sync*
