#!/usr/bin/env bash
# Runs for calibrating configs/clusters/local.yaml (strata plan --calibrate) and for validating it
# out of sample (docs/planner-validation.md sec. 4):
#   cal-*  the calibration set: single-rank runs (hardware.threads=1) of models of different
#          widths, sequence lengths, MLPs and recomputation, and 2- and 4-rank runs of the bench
#          model (tensor, pipeline and data parallel: MPI's shared-memory copies);
#   val-*  the 8-rank layouts of benchmarks/layouts.txt (8 ranks on this machine's 2 cores):
#          never seen by the fit.
# The machine is shared, so every run records cpu_ms (CPU time of all ranks per step) next to the
# wall-clock step_ms; the calibration uses --time cpu. Runs are interleaved (cal, val, cal, ...)
# and the whole list repeated REPEATS times, so slow phases of the machine's load hit every
# configuration alike. Each run folder keeps config.yaml, metrics.jsonl and the log (without the
# memory tables), with the load average before the run; OUT/ENV.txt the commit, host and date.
#   benchmarks/calibrate_local.sh [BUILD_DIR] [OUT] [REPEATS] [STEPS]
# then
#   build/strata plan --calibrate OUT/rep*/cal-* --gpu local --time cpu --max-spread 0.3 \
#     --fit sustained_fraction,small_gemm_width,attention_fraction,intra_node_gb_per_s,intra_node_alpha_us \
#     --out configs/clusters/local.yaml
# (peak_tflops_fp32 and memory_bandwidth_gb_per_s from ENV.txt's one-core measurements first)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"; out="${2:-$root/benchmarks/results/local-calibration}"
repeats="${3:-3}"; steps="${4:-6}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$out"
{
  echo "commit: $(git -C "$root" rev-parse HEAD)"
  echo "uncommitted changes outside benchmarks/results: $(git -C "$root" status --porcelain -- . ':!benchmarks/results' | wc -l)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(grep -o 'avx512f' /proc/cpuinfo | head -1 || echo no-avx512)"
  echo "blas: OPENBLAS_NUM_THREADS=1; hardware.threads=1 per rank"
  echo "repeats: $repeats; steps per run: $steps (the first is warm-up)"
  cc -O3 -march=native "$root/benchmarks/fma_peak.c" -o "$out/.fma_peak"
  echo "fp32 FMA peak of one core (benchmarks/fma_peak.c, thread CPU time): $("$out/.fma_peak") GFLOP/s"
  cc -O3 -march=native "$root/benchmarks/core_bandwidth.c" -o "$out/.core_bandwidth"
  echo "memory bandwidth of one core (benchmarks/core_bandwidth.c, triad, thread CPU time): $("$out/.core_bandwidth") GB/s"
  rm -f "$out/.fma_peak" "$out/.core_bandwidth"
} > "$out/ENV.txt"

common=(--config "$root/configs/bench_layouts.yaml" --set "train.steps=$steps" --set train.log_interval=100
        --set ckpt.save_at_end=false --set eval.interval=0 --set hardware.threads=1 --set parallel.dp=1)
# name | ranks | overrides
cal=(
  "cal-d256-t128|1|"
  "cal-d128-t128|1|--set model.d_model=128"
  "cal-d64-t128|1|--set model.d_model=64 --set model.num_heads=4"
  "cal-d512-t128|1|--set model.d_model=512 --set model.num_layers=4 --set parallel.global_batch_size=8"
  "cal-d256-t512|1|--set model.max_seq_len=512 --set train.seq_len=512 --set parallel.micro_batch_size=1 --set parallel.global_batch_size=4"
  "cal-d256-t512-full|1|--set model.max_seq_len=512 --set train.seq_len=512 --set parallel.micro_batch_size=1 --set parallel.global_batch_size=4 --set model.recompute=full"
  "cal-d256-t1024|1|--set model.max_seq_len=1024 --set train.seq_len=1024 --set parallel.micro_batch_size=1 --set parallel.global_batch_size=2"
  "cal-llama-tiny|1|--set model=$root/configs/models/llama_tiny.yaml --set train.seq_len=256 --set parallel.micro_batch_size=4 --set parallel.global_batch_size=8"
  "cal-llama-tiny-full|1|--set model=$root/configs/models/llama_tiny.yaml --set train.seq_len=256 --set parallel.micro_batch_size=4 --set parallel.global_batch_size=8 --set model.recompute=full"
  "cal-gpt2-124m|1|--set model=$root/configs/models/gpt2_124m.yaml --set train.seq_len=256 --set parallel.micro_batch_size=1 --set parallel.global_batch_size=1"
  "cal-r2-tp2|2|--set parallel.tp=2 --set parallel.dp=1 --set parallel.sequence_parallel=true"
  "cal-r2-pp2|2|--set parallel.pp=2 --set parallel.dp=1"
  "cal-r2-dp2|2|--set parallel.dp=2 --set parallel.zero_stage=1"
  "cal-r4-tp4|4|--set parallel.tp=4 --set parallel.dp=1 --set parallel.sequence_parallel=true"
  "cal-r4-tp2-dp2|4|--set parallel.tp=2 --set parallel.dp=2 --set parallel.zero_stage=1 --set parallel.sequence_parallel=true"
  "cal-r4-pp2-dp2|4|--set parallel.pp=2 --set parallel.dp=2 --set parallel.zero_stage=1"
)
val=()
while read -r tp pp dp sched v zero sp; do
  val+=("val-tp$tp-pp$pp-dp$dp-$sched-v$v-z$zero-sp$sp|8|--set parallel.tp=$tp --set parallel.pp=$pp --set parallel.dp=$dp --set parallel.schedule=$sched --set parallel.virtual_stages=$v --set parallel.zero_stage=$zero --set parallel.sequence_parallel=$sp")
done < <(grep -v "^#" "$root/benchmarks/layouts.txt")

run_one() {  # rep, "name|ranks|overrides"
  local rep="$1" name="${2%%|*}" rest="${2#*|}"
  local ranks="${rest%%|*}" extra="${rest#*|}"
  local dir="$out/rep$rep/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  # shellcheck disable=SC2086
  if [ "$ranks" = 1 ]; then
    "$build/strata" train "${common[@]}" $extra --set "train.out_dir=$dir" </dev/null >"$dir/full.log" 2>&1
  else
    mpiexec -n "$ranks" --oversubscribe "$build/strata" train "${common[@]}" $extra --set "train.out_dir=$dir" \
      </dev/null >"$dir/full.log" 2>&1
  fi
  { echo "load average before the run: $load"; grep -v '^  ' "$dir/full.log"; } > "$dir/train.log"
  rm -f "$dir/full.log"; rm -rf "$dir/checkpoints"
  printf "rep %s %-40s %s\n" "$rep" "$name" "$(python3 -c '
import json,statistics,sys
r=[x for x in map(json.loads, open(sys.argv[1])) if "step_ms" in x][1:]
print("cpu %.0f ms  wall %.0f ms" % (statistics.median(x["cpu_ms"] for x in r), statistics.median(x["step_ms"] for x in r)))' "$dir/metrics.jsonl")"
}

for rep in $(seq 1 "$repeats"); do
  n=$(( ${#cal[@]} > ${#val[@]} ? ${#cal[@]} : ${#val[@]} ))
  for i in $(seq 0 $((n - 1))); do
    if [ "$i" -lt "${#cal[@]}" ]; then run_one "$rep" "${cal[$i]}"; fi
    if [ "$i" -lt "${#val[@]}" ]; then run_one "$rep" "${val[$i]}"; fi
  done
done
echo "runs in $out"
