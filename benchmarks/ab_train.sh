#!/usr/bin/env bash
# Two strata binaries side by side on the same training job: rounds of A then B (alternating, so
# machine load hits both alike), each a short `strata train` run; the tokens/s of every step
# after the first two (warm-up) come from the runs' own metrics.jsonl. Prints per-round medians
# and the median ratio B/A with its spread.
#
#   benchmarks/ab_train.sh OLD_STRATA NEW_STRATA [ROUNDS] [STEPS] [-- extra --set options]
# Default job: gpt2_124m, fp32, micro-batch 4 x 256 tokens, 2 threads, synthetic data.
set -euo pipefail
a="$1"; b="$2"; rounds="${3:-5}"; steps="${4:-6}"
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {  # run BINARY OUT_DIR [--set ...]
  local bin="$1" out="$2"; shift 2
  OPENBLAS_NUM_THREADS=2 "$bin" train --config "$root/configs/demo.yaml" --set model="$root/configs/models/gpt2_124m.yaml" \
    --set data.source=synthetic --set data.datasets=[] --set "data.tokenizer=\"\"" --set data.valid_fraction=0 \
    --set parallel.micro_batch_size=4 --set parallel.global_batch_size=4 --set train.seq_len=256 \
    --set train.steps="$steps" --set hardware.threads=2 --set eval.windows=0 --set ckpt.save_at_end=false \
    --set ckpt.interval=0 --set train.out_dir="$out" "$@" >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
tps() { python3 -c "import json,sys; [print(json.loads(l)['tokens_per_s']) for l in open(sys.argv[1]) if 'tokens_per_s' in l and json.loads(l)['step'] > 2]" "$1/metrics.jsonl"; }
ratios=()
for r in $(seq 1 "$rounds"); do
  run "$a" "$tmp/a$r" "$@"; run "$b" "$tmp/b$r" "$@"
  ma=$(tps "$tmp/a$r" | median); mb=$(tps "$tmp/b$r" | median)
  ratio=$(python3 -c "print(f'{$mb / $ma:.4f}')")
  ratios+=("$ratio")
  echo "round $r: A $ma tokens/s, B $mb tokens/s, B/A $ratio"
done
printf '%s\n' "${ratios[@]}" | python3 -c "
import statistics, sys
r = sorted(float(x) for x in sys.stdin)
print(f'B/A median {statistics.median(r):.4f} over {len(r)} rounds (min {r[0]:.4f}, max {r[-1]:.4f})')"
