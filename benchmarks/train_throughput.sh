#!/usr/bin/env bash
# Trainer throughput in one run: `strata train` on GPT-2 124M (fp32, synthetic tokens) at
# micro-batch B and sequence length T on THREADS threads, read from the trainer's own
# metrics.jsonl: tokens/s, achieved GFLOP/s (model FLOPs 6N + 12 L T C per token) and the
# fraction of the fp32 peak the trainer measured at start (MFU). With --llmc DIR (a local
# checkout of karpathy/llm.c) llm.c's CPU trainer runs the same model, B, T and threads in the
# same rounds (benchmarks/llmc_driver.c, built here against DIR; nothing of llm.c is in this
# repository), and its tokens/s, GFLOP/s (same formula) and % of the same peak are printed.
#
# The two run alternately, ROUNDS times, so a busy shared machine slows both alike; each
# round's figure is the median over its steps after the first (warm-up), and the summary gives
# the median over rounds with the range (the noise).
#
#   benchmarks/train_throughput.sh [--batch 4] [--seq 256] [--threads 2] [--steps 6]
#                                  [--rounds 3] [--llmc DIR] [--llmc-steps 3]
# Environment: STRATA (the binary; default build/strata), CC (for llm.c; default gcc).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
B=4 T=256 THREADS=2 STEPS=6 ROUNDS=3 LLMC="" LLMC_STEPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) B=$2; shift 2 ;;
    --seq) T=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --llmc) LLMC=$2; shift 2 ;;
    --llmc-steps) LLMC_STEPS=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "train_throughput.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
STRATA=${STRATA:-${BUILD_DIR:-$root/build}/strata}
[ -x "$STRATA" ] || { echo "train_throughput.sh: no strata binary at $STRATA (build it: scripts/build.sh strata)" >&2; exit 1; }
[ "$STEPS" -ge 2 ] && [ "$LLMC_STEPS" -ge 2 ] || { echo "train_throughput.sh: --steps and --llmc-steps need >= 2 (the first is warm-up)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-throughput.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "$LLMC" ]; then
  [ -f "$LLMC/train_gpt2.c" ] || { echo "train_throughput.sh: $LLMC/train_gpt2.c not found (--llmc wants an llm.c checkout)" >&2; exit 1; }
  # llm.c's Makefile flags for its CPU trainer (-Ofast, the build CPU, OpenMP).
  ${CC:-gcc} -Ofast -march=native -fopenmp -Wno-unused-result -I"$LLMC" -o "$work/llmc_driver" \
    "$root/benchmarks/llmc_driver.c" -lm 2>"$work/llmc_build.log" ||
    { cat "$work/llmc_build.log" >&2; echo "train_throughput.sh: building llm.c's trainer failed" >&2; exit 1; }
fi

# FLOPs per token of GPT-2 124M at T, and the median of the steps after the first.
flops_per_token() { python3 -c "N=123532032; L=12; C=768; print(6*N + 12*L*$1*C)"; }
FPT=$(flops_per_token "$T")

echo "GPT-2 124M fp32, B $B x T $T = $((B * T)) tokens per step, $THREADS threads, $ROUNDS rounds; $("$STRATA" --version)"
# The GEMM kernels decide most of the step: say which OpenBLAS core runs them, and whether the
# environment forced it (strata picks the widest the CPU has when OPENBLAS_CORETYPE is unset).
echo "BLAS: $("$STRATA" info 2>/dev/null | sed -n 's/^ *BLAS *//p')${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE from the environment)}"
echo "round  program   tokens/s   GFLOP/s   % of peak   (peak GFLOP/s measured by strata train at start)"
results="$work/results.txt"
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
  out="$work/strata_$r"
  "$STRATA" train --config "$root/configs/test_tiny.yaml" \
    --set model="$root/configs/models/gpt2_124m.yaml" --set parallel.micro_batch_size="$B" \
    --set train.seq_len="$T" --set train.steps="$STEPS" --set hardware.threads="$THREADS" \
    --set eval.windows=0 --set ckpt.save_at_end=false --set train.log_interval=1000 \
    --set train.out_dir="$out" >"$work/strata_$r.log" 2>&1 ||
    { tail -5 "$work/strata_$r.log" >&2; echo "train_throughput.sh: strata train failed" >&2; exit 1; }
  python3 - "$out/metrics.jsonl" "$r" "$results" <<'EOF'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][1:]
tps = statistics.median(s["tokens_per_s"] for s in steps)
gf = statistics.median(s["tflops"] for s in steps) * 1e3
# The trainer stops reporting MFU (0) once a step would exceed the peak it measured at start,
# which a busy machine can make too low: such a round has no % of peak.
mfus = [s["mfu"] for s in steps if s["mfu"] > 0]
if not mfus:
    print(f"{sys.argv[2]:>5}  strata   {tps:9.1f} {gf:9.1f}        n/a   (the peak measured at start was below the achieved rate: busy machine)")
    sys.exit(0)
mfu = statistics.median(mfus)
peak = gf / mfu
print(f"{sys.argv[2]:>5}  strata   {tps:9.1f} {gf:9.1f} {100 * mfu:10.1f}   ({peak:.1f})")
open(sys.argv[3], "a").write(f"strata {tps} {gf} {mfu} {peak}\n")
EOF
  if [ -n "$LLMC" ]; then
    peak=$(awk '$1 == "strata" {p = $5} END {print p + 0}' "$results")  # 0: no strata round had one yet
    (cd "$work" && OMP_NUM_THREADS="$THREADS" ./llmc_driver "$B" "$T" "$LLMC_STEPS" "$work/gpt2_124M.bin") \
      >"$work/llmc_$r.log" 2>&1 || { tail -5 "$work/llmc_$r.log" >&2; echo "train_throughput.sh: llm.c failed" >&2; exit 1; }
    python3 - "$work/llmc_$r.log" "$r" "$results" "$FPT" "$peak" "$((B * T))" <<'EOF'
import re, statistics, sys
ms = [float(m.group(1)) for m in re.finditer(r"tokens in ([0-9.]+) ms", open(sys.argv[1]).read())][1:]
tps = int(sys.argv[6]) / (statistics.median(ms) / 1e3)
gf = tps * float(sys.argv[4]) / 1e9
peak = float(sys.argv[5])
if peak <= 0:
    print(f"{sys.argv[2]:>5}  llm.c    {tps:9.1f} {gf:9.1f}        n/a   (no peak measured yet)")
    sys.exit(0)
print(f"{sys.argv[2]:>5}  llm.c    {tps:9.1f} {gf:9.1f} {100 * gf / peak:10.1f}   (same peak)")
open(sys.argv[3], "a").write(f"llm.c {tps} {gf} {gf / peak} {peak}\n")
EOF
  fi
done
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for prog in ("strata", "llm.c"):
    r = [list(map(float, x[1:])) for x in rows if x[0] == prog]
    if not r:
        continue
    col = lambda i: sorted(x[i] for x in r)
    tps, gf, frac = col(0), col(1), col(2)
    print(f"{prog:7} median over {len(r)} rounds: {statistics.median(tps):.1f} tokens/s, {statistics.median(gf):.1f} GFLOP/s, "
          f"{100 * statistics.median(frac):.1f}% of peak (range {100 * frac[0]:.1f}-{100 * frac[-1]:.1f}%, "
          f"{tps[0]:.1f}-{tps[-1]:.1f} tokens/s)")
EOF
