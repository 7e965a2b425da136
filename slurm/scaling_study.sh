#!/usr/bin/env bash
# A scaling study in one command: one config trained at a list of node counts, each point its
# own Slurm job (exclusive nodes, tagged with the study), then one report over the runs:
# `strata report scaling` -> <study>/scaling.csv, scaling.md and scaling.png (tokens/s, TFLOP/s
# per rank, MFU and scaling efficiency against nodes).
#
#   slurm/scaling_study.sh                                         # strong scaling of 7B on 1-8 nodes
#   MODE=weak NODES_LIST="1 2 4 8 16" slurm/scaling_study.sh
#   CONFIG=configs/pretrain_70b.yaml SCRIPT=slurm/pretrain_70b.sh NODES_LIST="16 32 64" slurm/scaling_study.sh
#   WAIT=1 ...                                                     # wait for the jobs, then write the report
#   LOCAL=1 RANKS_LIST="1 2 4" SCRIPT=slurm/pretrain_tiny.sh SET="parallel.tp=1 parallel.pp=1" slurm/scaling_study.sh
#                                                                  # the same study on this machine, no Slurm
#
# Environment (defaults in brackets):
#   SCRIPT [slurm/pretrain_7b.sh]   job script of every point (its #SBATCH header: time, CPUs, signal...)
#   CONFIG [the script's own]       run config
#   NODES_LIST ["1 2 4 8"]          node counts; a point runs NODES x GPUS_PER_NODE ranks
#   RANKS_LIST                      instead of NODES_LIST: total ranks per point, on ceil(ranks /
#                                   GPUS_PER_NODE) nodes (a study inside one node)
#   GPUS_PER_NODE [8]               ranks per node
#   MODE [strong]                   strong: every point trains the same global batch (the config's,
#                                   or GLOBAL_BATCH); weak: every DP rank keeps MICROBATCHES [8]
#                                   micro-batches per step, so the global batch grows with DP
#   STEPS [50]                      steps per point (the report leaves the first tenth out as warm-up)
#   STUDY [<config>-<mode>-<time>]  the study's tag; everything goes to $STUDIES/$STUDY/
#   STUDIES [runs/studies]          parent folder of studies
#   SET                             more --set options for every point ("parallel.tp=2 optim.lr=1e-4")
#   WAIT [0]                        1: wait for every job, then write the report (else print the command)
#   LOCAL [0]                       1: run the points one after another here with mpirun, no Slurm
#   STRATA [build/strata]           the binary (also for the report)
# Checkpoints are off in study runs (ckpt.interval=0, save_at_end=false): they would add I/O to
# the step times and fill the disk with copies of one model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

SCRIPT=${SCRIPT:-slurm/pretrain_7b.sh}
MODE=${MODE:-strong}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
STEPS=${STEPS:-50}
STUDIES=${STUDIES:-runs/studies}
config=${CONFIG:-$(sed -n 's/^CONFIG=\${CONFIG:-\(.*\)}$/\1/p' "$SCRIPT")}
[ -n "$config" ] || { echo "scaling_study: set CONFIG (no default found in $SCRIPT)" >&2; exit 2; }
STUDY=${STUDY:-$(basename "$config" .yaml)-$MODE-$(date -u +%Y%m%d-%H%M%S)}
study_dir=$STUDIES/$STUDY
strata=${STRATA:-$root/build/strata}

case "$MODE" in
  strong) mode_set="parallel.dp=0${GLOBAL_BATCH:+ parallel.global_batch_size=$GLOBAL_BATCH}" ;;
  weak) mode_set="parallel.dp=0 parallel.global_batch_size=0 parallel.num_microbatches=${MICROBATCHES:-8}" ;;
  *) echo "scaling_study: MODE=$MODE: expected strong or weak" >&2; exit 2 ;;
esac

# The points: "nodes ranks_per_node" pairs.
points=()
if [ -n "${RANKS_LIST:-}" ]; then
  for r in $RANKS_LIST; do
    n=$(( (r + GPUS_PER_NODE - 1) / GPUS_PER_NODE ))
    [ $((r % n)) -eq 0 ] || { echo "scaling_study: $r ranks do not split evenly over $n nodes" >&2; exit 2; }
    points+=("$n $((r / n))")
  done
else
  for n in ${NODES_LIST:-1 2 4 8}; do points+=("$n $GPUS_PER_NODE"); done
fi

mkdir -p "$study_dir/runs" "$study_dir/logs"
echo "scaling study $STUDY: $MODE scaling of $config with $SCRIPT at ${#points[@]} points; $STEPS steps each"
echo "  folder $study_dir"
# What every point's job reads from its environment (slurm/launch.sh).
export CONFIG="$config" RUNS="$study_dir/runs" TAG="$STUDY" SCALING="$MODE"
export SET="${SET:-} $mode_set train.steps=$STEPS ckpt.interval=0 ckpt.save_at_end=false"
[ -n "${STRATA:-}" ] && export STRATA

failed=0
pids=()
for p in "${points[@]}"; do
  read -r n per_node <<<"$p"
  name="$STUDY-n${n}r$((n * per_node))"
  if [ "${LOCAL:-0}" = 1 ]; then
    echo "== point: $n node x $per_node ranks (local) =="
    LOCAL=1 NODES=1 GPUS_PER_NODE=$per_node JOB_NAME=$name bash "$SCRIPT" >"$study_dir/logs/$name.out" 2>&1 ||
      { echo "  failed: see $study_dir/logs/$name.out"; failed=1; }
    continue
  fi
  args=(--job-name="$name" --nodes="$n" --ntasks-per-node="$per_node" --exclusive
        --output="$study_dir/logs/%x-%j.out")
  grep -q '^#SBATCH --gpus-per-node' "$SCRIPT" && args+=(--gpus-per-node="$per_node")
  if [ "${WAIT:-0}" = 1 ]; then
    NODES=$n GPUS_PER_NODE=$per_node sbatch --wait "${args[@]}" "$SCRIPT" &
    pids+=($!)
  else
    NODES=$n GPUS_PER_NODE=$per_node sbatch "${args[@]}" "$SCRIPT"
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

if [ "${LOCAL:-0}" != 1 ] && [ "${WAIT:-0}" != 1 ]; then
  echo "when the jobs are done (squeue -u \$USER | grep $STUDY), the report:"
  echo "  $strata report scaling --out $study_dir/scaling $study_dir/runs/*"
  exit 0
fi
[ "$failed" = 0 ] || echo "scaling_study: some points failed; reporting the runs that finished" >&2
shopt -s nullglob
runs=("$study_dir"/runs/*/)
[ ${#runs[@]} -gt 0 ] || { echo "scaling_study: no runs in $study_dir/runs" >&2; exit 1; }
"$strata" report scaling --out "$study_dir/scaling" "${runs[@]}"
exit "$failed"
