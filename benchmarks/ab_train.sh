#!/usr/bin/env bash
# Two strata binaries side by side on the same training job: rounds of A then B (alternating, so
# machine load hits both alike), each a short `strata train` run. Prints per-round figures and
# the median ratio B/A with its spread.
#
#   benchmarks/ab_train.sh OLD_STRATA NEW_STRATA [ROUNDS] [STEPS] [-- extra --set options]
#
# MEASURE=wall (default): tokens/s of every step after the first two (warm-up), from the runs'
#   own metrics.jsonl; the median step of each run.
# MEASURE=cpu: CPU seconds per step, for shared machines where wall time measures the other
#   tenants: each binary runs STEPS steps and 2 steps, and (cpu(STEPS) - cpu(2)) / (STEPS - 2)
#   is its CPU time per step after warm-up (start-up and the first steps cancel). Reported as
#   steps per CPU second, so B/A > 1 means B is faster in both modes. Use THREADS=1 with it
#   (BLAS threads that spin while waiting count as CPU time).
# Default job: gpt2_124m, fp32, micro-batch 4 x 256 tokens, THREADS (default 2) threads,
# synthetic data.
set -euo pipefail
a="$1"; b="$2"; rounds="${3:-5}"; steps="${4:-6}"
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
measure="${MEASURE:-wall}"; threads="${THREADS:-2}"
case "$measure" in wall|cpu) ;; *) echo "ab_train: MEASURE must be wall or cpu, got '$measure'" >&2; exit 2 ;; esac
[ "$measure" = wall ] || [ "$steps" -gt 2 ] || { echo "ab_train: MEASURE=cpu needs STEPS > 2" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {  # run BINARY OUT_DIR STEPS [--set ...]; prints the run's user + system CPU seconds
  local bin="$1" out="$2" n="$3"; shift 3
  OPENBLAS_NUM_THREADS="$threads" /usr/bin/time -f '%U %S' -o "$out.time" \
    "$bin" train --config "$root/configs/demo.yaml" --set model="$root/configs/models/gpt2_124m.yaml" \
    --set data.source=synthetic --set data.datasets=[] --set "data.tokenizer=\"\"" --set data.valid_fraction=0 \
    --set parallel.micro_batch_size=4 --set parallel.global_batch_size=4 --set train.seq_len=256 \
    --set train.steps="$n" --set hardware.threads="$threads" --set eval.windows=0 --set ckpt.save_at_end=false \
    --set ckpt.interval=0 --set train.out_dir="$out" "$@" >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
  awk '{print $1 + $2}' "$out.time"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
tps() { python3 -c "import json,sys; [print(json.loads(l)['tokens_per_s']) for l in open(sys.argv[1]) if 'tokens_per_s' in l and json.loads(l)['step'] > 2]" "$1/metrics.jsonl"; }
# figure BINARY TAG: the run's figure of merit (higher is faster).
figure() {
  local bin="$1" tag="$2"; shift 2
  if [ "$measure" = wall ]; then
    run "$bin" "$tmp/$tag" "$steps" "$@" >/dev/null
    tps "$tmp/$tag" | median
  else
    local long short
    long=$(run "$bin" "$tmp/$tag" "$steps" "$@"); short=$(run "$bin" "$tmp/$tag.short" 2 "$@")
    python3 -c "print(f'{($steps - 2) / ($long - $short):.5f}')"
  fi
}
unit=$([ "$measure" = wall ] && echo "tokens/s" || echo "steps per CPU s")
ratios=()
for r in $(seq 1 "$rounds"); do
  ma=$(figure "$a" "a$r" "$@"); mb=$(figure "$b" "b$r" "$@")
  ratio=$(python3 -c "print(f'{$mb / $ma:.4f}')")
  ratios+=("$ratio")
  echo "round $r: A $ma $unit, B $mb $unit, B/A $ratio"
done
printf '%s\n' "${ratios[@]}" | python3 -c "
import statistics, sys
r = sorted(float(x) for x in sys.stdin)
print(f'B/A median {statistics.median(r):.4f} over {len(r)} rounds (min {r[0]:.4f}, max {r[-1]:.4f})')"
