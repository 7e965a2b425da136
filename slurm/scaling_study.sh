#!/usr/bin/env bash
# A scaling study in one command: one config trained at a list of node counts. Every point is
# first checked by the planner (`strata plan --config`: the layout and the batch divide, the
# memory fits) and refused with the reason when it cannot run; the others are submitted, each
# its own exclusive Slurm job tagged with the study, one after another (ORDER=serial) or all at
# once (ORDER=concurrent). Then one report over the points: `strata report scaling --study`
# -> <study>/scaling.csv, scaling.md and scaling.png with the finished runs (tokens/s, TFLOP/s
# per rank, MFU, communication share, speedup and efficiency, each next to the planner's
# prediction) and the points without a result, with their reasons.
#
#   slurm/scaling_study.sh                                         # strong scaling of 7B on 1-8 nodes
#   MODE=weak NODES_LIST="1 2 4 8 16" slurm/scaling_study.sh
#   CONFIG=configs/pretrain_70b.yaml SCRIPT=slurm/pretrain_70b.sh NODES_LIST="16 32 64" slurm/scaling_study.sh
#   WAIT=1 ...                                                     # wait for the jobs, then write the report
#   CHECK=only ...                                                 # check and predict every point, submit nothing
#   LOCAL=1 RANKS_LIST="1 2 4" SCRIPT=slurm/pretrain_tiny.sh SET="parallel.tp=1 parallel.pp=1" slurm/scaling_study.sh
#                                                                  # the same study on this machine, no Slurm
#
# Environment (defaults in brackets):
#   SCRIPT [slurm/pretrain_7b.sh]   job script of every point (its #SBATCH header: time, CPUs, signal...)
#   CONFIG [the script's own]       run config
#   CLUSTER                         cluster file (name in configs/clusters, or a path) the points are
#                                   checked and predicted on [the config's hardware.cluster, else
#                                   h100_sxm_80gb for hardware.device: cuda, cpu_node for cpu]
#   NODES_LIST ["1 2 4 8"]          node counts; a point runs NODES x GPUS_PER_NODE ranks
#   RANKS_LIST                      instead of NODES_LIST: total ranks per point, on ceil(ranks /
#                                   GPUS_PER_NODE) nodes (a study inside one node)
#   GPUS_PER_NODE [8]               ranks per node
#   MODE [strong]                   strong: every point trains the same global batch (the config's,
#                                   or GLOBAL_BATCH); weak: every DP rank keeps MICROBATCHES [8]
#                                   micro-batches per step, so the global batch grows with DP
#   STEPS [50]                      steps per point (the report leaves the first tenth out as warm-up)
#   ORDER [serial]                  serial: one point at a time, in the order given (each job waits for
#                                   the one before: --dependency=afterany), so the points do not share
#                                   nodes, file system or network; concurrent: all at once
#   CHECK [refuse]                  refuse: points the check refuses are not submitted (the report lists
#                                   them with the reason); warn: submit them anyway; only: check and
#                                   predict every point, submit nothing
#   STUDY [<config>-<mode>-<time>]  the study's tag; everything goes to $STUDIES/$STUDY/
#   STUDIES [runs/studies]          parent folder of studies
#   SET                             more --set options for every point ("parallel.tp=2 optim.lr=1e-4")
#   WAIT [0]                        1: wait for every job, then write the report (else print the command)
#   LOCAL [0]                       1: run the points one after another here with mpirun, no Slurm
#   STRATA [build/strata]           the binary (also for the checks and the report)
# Checkpoints are off in study runs (ckpt.interval=0, save_at_end=false): they would add I/O to
# the step times and fill the disk with copies of one model.
#
# The study folder: study.jsonl (the study, then one record per point: refused with the reason,
# submitted with its job id, run folder and log, or failed at submission), points/<point>.plan.txt
# (the planner's check and prediction), runs/<point>-<job id>/, logs/<point>-<job id>.out, and the
# report. Exit status: 0 when every point finished, 1 when some did not (the report lists them),
# 2 for bad input.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=slurm/launch.sh
source "$root/slurm/launch.sh"  # strata_json_str

die() { echo "scaling_study: $*" >&2; exit 2; }

SCRIPT=${SCRIPT:-slurm/pretrain_7b.sh}
MODE=${MODE:-strong}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
STEPS=${STEPS:-50}
STUDIES=${STUDIES:-runs/studies}
ORDER=${ORDER:-serial}
CHECK=${CHECK:-refuse}
[ -f "$SCRIPT" ] || die "SCRIPT=$SCRIPT: no such file"
config=${CONFIG:-$(sed -n 's/^CONFIG=\${CONFIG:-\(.*\)}$/\1/p' "$SCRIPT")}
[ -n "$config" ] || die "set CONFIG (no default found in $SCRIPT)"
[ -f "$config" ] || die "CONFIG=$config: no such file"
STUDY=${STUDY:-$(basename "$config" .yaml)-$MODE-$(date -u +%Y%m%d-%H%M%S)}
case "$STUDIES" in /*) study_dir=$STUDIES/$STUDY ;; *) study_dir=$root/$STUDIES/$STUDY ;; esac
if [ -n "${STRATA:-}" ]; then strata=$STRATA; else strata=$root/build/strata; fi
[ -x "$strata" ] || die "no strata binary at $strata (build it: scripts/build.sh strata, or set STRATA)"

case "$MODE" in
  strong) mode_set="parallel.dp=0${GLOBAL_BATCH:+ parallel.global_batch_size=$GLOBAL_BATCH}" ;;
  weak) mode_set="parallel.dp=0 parallel.global_batch_size=0 parallel.num_microbatches=${MICROBATCHES:-8}" ;;
  *) die "MODE=$MODE: expected strong or weak" ;;
esac
case "$ORDER" in serial|concurrent) ;; *) die "ORDER=$ORDER: expected serial or concurrent" ;; esac
case "$CHECK" in refuse|warn|only) ;; *) die "CHECK=$CHECK: expected refuse, warn or only" ;; esac

# The points: "nodes ranks_per_node" pairs.
points=()
if [ -n "${RANKS_LIST:-}" ]; then
  for r in $RANKS_LIST; do
    n=$(( (r + GPUS_PER_NODE - 1) / GPUS_PER_NODE ))
    [ $((r % n)) -eq 0 ] || die "$r ranks do not split evenly over $n nodes"
    points+=("$n $((r / n))")
  done
else
  for n in ${NODES_LIST:-1 2 4 8}; do points+=("$n $GPUS_PER_NODE"); done
fi

mkdir -p "$study_dir/runs" "$study_dir/logs" "$study_dir/points"
manifest=$study_dir/study.jsonl
echo "scaling study $STUDY: $MODE scaling of $config with $SCRIPT at ${#points[@]} points; $STEPS steps each;" \
     "order $ORDER; check $CHECK"
echo "  folder $study_dir"
# What every point's job reads from its environment (slurm/launch.sh).
export CONFIG="$config" RUNS="$study_dir/runs" TAG="$STUDY" SCALING="$MODE"
export SET="${SET:-} $mode_set train.steps=$STEPS ckpt.interval=0 ckpt.save_at_end=false"
export STRATA="$strata"
read -ra set_items <<<"$SET"  # split on blanks, no glob expansion (as slurm/launch.sh does)
plan_args=(plan --config "$config")
for s in "${set_items[@]}"; do plan_args+=(--set "$s"); done
[ -n "${CLUSTER:-}" ] && plan_args+=(--cluster "$CLUSTER")

# One JSON record of a point: point nodes ranks per_node status [key value]...
point_record() {
  local name="$1" n="$2" r="$3" p="$4" status="$5"; shift 5
  local line
  line="{\"point\": $(strata_json_str "$name"), \"nodes\": $n, \"ranks\": $r, \"ranks_per_node\": $p"
  line+=", \"status\": $(strata_json_str "$status")"
  while [ $# -ge 2 ]; do line+=", \"$1\": $(strata_json_str "$2")"; shift 2; done
  echo "$line}" >>"$manifest"
}

# ---- 1. check every point before anything is submitted ------------------------------------------
names=() verdicts=() cluster_file=""
for p in "${points[@]}"; do
  read -r n per_node <<<"$p"
  ranks=$((n * per_node))
  name="$STUDY-n${n}r${ranks}"
  out="$study_dir/points/$name.plan.txt"
  set +e
  "$strata" "${plan_args[@]}" --gpus "$ranks" --gpus-per-node "$per_node" >"$out" 2>&1
  rc=$?
  set -e
  case $rc in
    0) verdict=ok ;;
    3) verdict=refused ;;
    *) cat "$out" >&2; die "strata plan could not check the config (exit status $rc; above)" ;;
  esac
  [ -z "$cluster_file" ] && cluster_file=$(sed -n 's/^config .*; cluster file //p' "$out" | head -n 1)
  names+=("$name") verdicts+=("$verdict")
  pred=$(sed -n 's/^  total  *\([0-9.]* [mu]*s\)$/\1/p' "$out" | tail -n 1)
  printf '  %-28s %2d node(s) x %d ranks: %s%s\n' "$name" "$n" "$per_node" "$verdict" \
    "${pred:+ (predicted step $pred)}"
  grep -E '^(refused|note): ' "$out" | sed 's/^/      /' || true
done
{
  printf '{"study": %s, "mode": %s, "config": %s, ' "$(strata_json_str "$STUDY")" "$(strata_json_str "$MODE")" \
    "$(strata_json_str "$config")"
  printf '"script": %s, "cluster": %s, "steps": %d, ' "$(strata_json_str "$SCRIPT")" \
    "$(strata_json_str "$cluster_file")" "$STEPS"
  printf '"order": %s, "check": %s, "started": %s}\n' "$(strata_json_str "$ORDER")" "$(strata_json_str "$CHECK")" \
    "$(strata_json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
} >>"$manifest"
if [ "$CHECK" = only ]; then
  echo "CHECK=only: nothing submitted; the checks and predictions are in $study_dir/points/"
  for v in "${verdicts[@]}"; do [ "$v" = ok ] || exit 1; done
  exit 0
fi

# ---- 2. submit (or run, LOCAL=1) ----------------------------------------------------------------
failed=0 prev="" waits=() wait_names=()
for i in "${!points[@]}"; do
  read -r n per_node <<<"${points[$i]}"
  ranks=$((n * per_node)) name=${names[$i]}
  if [ "${verdicts[$i]}" = refused ]; then
    reason=$(sed -n 's/^refused: //p' "$study_dir/points/$name.plan.txt" | paste -sd ';' | sed 's/;/; /g')
    if [ "$CHECK" = refuse ]; then
      point_record "$name" "$n" "$ranks" "$per_node" refused reason "$reason"
      failed=1
      continue
    fi
    echo "  $name: refused by the check, submitted anyway (CHECK=warn): $reason"
  fi
  if [ "${LOCAL:-0}" = 1 ]; then
    log="$study_dir/logs/$name-local.out" run_dir="$study_dir/runs/$name-local"
    echo "== point $name: $ranks ranks (local) =="
    point_record "$name" "$n" "$ranks" "$per_node" submitted job_id local run_dir "$run_dir" log "$log"
    # All of the point's ranks on this machine.
    LOCAL=1 NODES=1 GPUS_PER_NODE=$ranks JOB_NAME=$name RUN_DIR=$run_dir LOG=$log bash "$SCRIPT" >"$log" 2>&1 ||
      { echo "  failed: see $log"; failed=1; }
    continue
  fi
  command -v sbatch >/dev/null || die "sbatch not found: run on a Slurm login node, or LOCAL=1"
  args=(--parsable --job-name="$name" --nodes="$n" --ntasks-per-node="$per_node" --exclusive
        --output="$study_dir/logs/%x-%j.out")
  grep -q '^#SBATCH --gpus-per-node' "$SCRIPT" && args+=(--gpus-per-node="$per_node")
  # Serial without waiting here: each job waits in the queue for the one before. (With WAIT=1
  # this script waits itself; a dependency on a job that has left Slurm's memory is an error.)
  [ "$ORDER" = serial ] && [ "${WAIT:-0}" != 1 ] && [ -n "$prev" ] && args+=(--dependency="afterany:$prev")
  err="$study_dir/points/$name.sbatch.err"
  if [ "${WAIT:-0}" = 1 ] && [ "$ORDER" = serial ]; then
    # One at a time: submit, wait for the job, then the next.
    set +e
    NODES=$n GPUS_PER_NODE=$per_node sbatch --wait "${args[@]}" "$SCRIPT" >"$study_dir/points/$name.id" 2>"$err"
    rc=$?
    set -e
  elif [ "${WAIT:-0}" = 1 ]; then
    NODES=$n GPUS_PER_NODE=$per_node sbatch --wait "${args[@]}" "$SCRIPT" >"$study_dir/points/$name.id" 2>"$err" &
    waits+=($!) wait_names+=("$i")
    rc=0
    # The job id is the first line sbatch prints; wait until it is there.
    for _ in $(seq 1 300); do [ -s "$study_dir/points/$name.id" ] || ! kill -0 "${waits[-1]}" 2>/dev/null && break; sleep 0.1; done
  else
    set +e
    NODES=$n GPUS_PER_NODE=$per_node sbatch "${args[@]}" "$SCRIPT" >"$study_dir/points/$name.id" 2>"$err"
    rc=$?
    set -e
  fi
  job_id=$(head -n 1 "$study_dir/points/$name.id" 2>/dev/null | cut -d';' -f1)
  if [ -z "$job_id" ]; then
    reason=$(grep -v '^$' "$err" | head -n 3 | paste -sd ' ')
    point_record "$name" "$n" "$ranks" "$per_node" submit_failed reason "sbatch failed (exit status $rc): $reason"
    echo "  $name: sbatch failed: $reason"
    failed=1
    continue
  fi
  prev=$job_id
  point_record "$name" "$n" "$ranks" "$per_node" submitted job_id "$job_id" \
    run_dir "$study_dir/runs/$name-$job_id" log "$study_dir/logs/$name-$job_id.out"
  echo "  $name: job $job_id"
  [ "$rc" -eq 0 ] || failed=1
done
for k in "${!waits[@]}"; do wait "${waits[$k]}" || failed=1; done

if [ "${LOCAL:-0}" != 1 ] && [ "${WAIT:-0}" != 1 ]; then
  echo "when the jobs are done (squeue -u \$USER | grep $STUDY), the report:"
  echo "  $strata report scaling --study $study_dir"
  exit 0
fi
# sbatch --wait returns 0 for a job cancelled while pending: the report decides from the run
# folders (job.json's exit code, the steps recorded), not from sbatch.
set +e
"$strata" report scaling --study "$study_dir" | tee "$study_dir/report.log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || { echo "scaling_study: no report (no point finished)" >&2; exit 1; }
grep -q '^[0-9]* finished runs\? reported, 0 points\? without a result' "$study_dir/report.log" || failed=1
[ "$failed" = 0 ] || echo "scaling_study: some points did not finish; the report lists them" >&2
exit "$failed"
