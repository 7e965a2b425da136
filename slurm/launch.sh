# The launch helper shared by slurm/pretrain_*.sh and slurm/scaling_study.sh (sourced, not run).
# A job script sets its #SBATCH header and CONFIG, finds this file and calls
#   strata_launch "$SCRIPT_PATH" "$@"
# which does one of three things:
#   inside a Slurm job      run the job: one strata rank per GPU (or per task on CPU nodes) with
#                           srun (LAUNCHER=mpirun: Open MPI's mpirun), thread and GPU binding by
#                           local rank, a run folder named after the job, resume from the latest
#                           checkpoint, and a requeue of the job after a SIGUSR1 warning
#   outside, LOCAL=1        run the same thing here with mpirun -n NODES*GPUS_PER_NODE (no Slurm)
#   outside, otherwise      submit the script: sbatch with NODES, GPUS_PER_NODE, TIME,
#                           PARTITION, ACCOUNT and SBATCH_ARGS from the environment (sbatch reads
#                           #SBATCH lines before the script runs, so an environment variable
#                           can change the allocation only at submission)
#
# Environment (all optional; the job script documents its defaults):
#   CONFIG          run config (configs/pretrain_*.yaml)
#   SET             extra --set options, space-separated: SET="train.steps=100 optim.lr=1e-4";
#                   arguments after the script name are passed to `strata train` as they are
#                   (sbatch slurm/pretrain_70b.sh --set "data.datasets=[a.h5, b.h5]")
#   NODES, GPUS_PER_NODE   the allocation (submission); in a job they must match it
#   RUNS            parent of run folders (default runs); RUN_DIR overrides the whole path
#                   (default $RUNS/<job name>-<job id>: a requeued job keeps its id, so its folder)
#   STRATA          the strata binary (default build/strata, else strata on PATH)
#   LAUNCHER        srun (default in a job) | mpirun (Open MPI inside the allocation)
#   SRUN_MPI        srun --mpi=<plugin>; default: the site's MpiDefault
#   CPU_BIND        srun --cpu-bind=<value>. Unset: cores where the site's Slurm can bind tasks to CPUs
#                   (TaskPlugin task/affinity or task/cgroup, asked with scontrol show config), else
#                   no --cpu-bind at all (srun would warn on every job); none: never pass it; any
#                   other value is passed as asked
#   MPI_BIND        mpirun --bind-to <value> (default core; none when ranks x threads outnumber the cores)
#   MAX_REQUEUES    stop requeueing after this many restarts (default 20)
#   TAG, SCALING    recorded in <run folder>/job.json (scaling_study.sh sets them)
#   TIME, PARTITION, ACCOUNT, SBATCH_ARGS   extra sbatch options at submission
# job.json also records the job's output file (log) and, once the job step has ended (and the
# job is not being requeued), its exit_code: what `strata report scaling` reads to tell a
# finished run from a failed one.

strata_log() { echo "strata-slurm $(date -u +%H:%M:%S): $*"; }
strata_die() { echo "strata-slurm: error: $*" >&2; exit 2; }

# The JSON string of $1 (backslashes, quotes and control characters escaped).
strata_json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

strata_launch() {
  local script="$1"; shift
  : "${STRATA_ROOT:?STRATA_ROOT must be set by the job script}"
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    strata_run_job "$@"
  elif [ "${LOCAL:-0}" = 1 ]; then
    strata_run_local "$@"
  else
    strata_submit "$script" "$@"
  fi
}

# ---- submission: sbatch the script with the geometry from the environment ------------------------
strata_submit() {
  local script="$1"; shift
  command -v sbatch >/dev/null || strata_die "sbatch not found: submit from a Slurm login node, or run with LOCAL=1"
  local args=()
  [ -n "${NODES:-}" ] && args+=("--nodes=$NODES")
  if [ -n "${GPUS_PER_NODE:-}" ]; then
    args+=("--ntasks-per-node=$GPUS_PER_NODE")
    # GPU scripts ask for GPUs; CPU scripts (pretrain_tiny.sh) run one rank per task.
    grep -q '^#SBATCH --gpus-per-node' "$script" && args+=("--gpus-per-node=$GPUS_PER_NODE")
  fi
  [ -n "${TIME:-}" ] && args+=("--time=$TIME")
  [ -n "${PARTITION:-}" ] && args+=("--partition=$PARTITION")
  [ -n "${ACCOUNT:-}" ] && args+=("--account=$ACCOUNT")
  # shellcheck disable=SC2206  # SBATCH_ARGS is a list of options on purpose
  args+=(${SBATCH_ARGS:-})
  mkdir -p logs  # the #SBATCH --output folder must exist before the job starts
  strata_log "sbatch ${args[*]} $script $*"
  exec sbatch "${args[@]}" "$script" "$@"
}

# ---- the job: environment, run folder, launch, signal forwarding, requeue ------------------------

# Communication settings. Everything here is a default that a site's module or the user's
# environment overrides (${VAR:-default}); the commented ones are the usual site-specific knobs.
strata_comm_env() {
  # NCCL (GPU collectives): WARN prints the failures only; INFO shows the rings and transports
  # picked at start (the first thing to look at when all-reduce is slow).
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  # Report an asynchronous NCCL error instead of hanging in the collective.
  export NCCL_ASYNC_ERROR_HANDLING=${NCCL_ASYNC_ERROR_HANDLING:-1}
  # Site-specific, set in the environment when needed:
  #   NCCL_SOCKET_IFNAME=ib0|hsn0   the interface NCCL bootstraps over (not docker0/lo)
  #   NCCL_IB_HCA=mlx5_0,mlx5_1     the InfiniBand adapters to use (all by default)
  #   NCCL_NET_GDR_LEVEL=PHB        GPUDirect RDMA distance; NCCL_CROSS_NIC=1 on rail-optimised fabrics
  #   FI_PROVIDER=cxi               HPE Slingshot (with the aws-ofi-nccl plugin)
  # Open MPI / UCX (the MPI path: pipeline sends, CPU runs, gradient sync without NCCL).
  #   OMPI_MCA_pml=ucx UCX_TLS=rc,sm,self UCX_NET_DEVICES=mlx5_0:1   InfiniBand through UCX
  # Open MPI refuses to run as root unless told (containers, CI).
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
}

# Writes <run dir>/job.json: what `strata report scaling` needs besides config.yaml and
# metrics.jsonl (nodes and ranks of the allocation, the study's tag and mode, the log, and the
# exit code once the step has ended: arguments 10 and 11, left out when empty).
strata_write_job_json() {
  local file="$1" job_id="$2" job_name="$3" nodes="$4" ranks="$5" per_node="$6" node_list="$7"
  local restart="$8" launcher="$9" log="${10:-}" exit_code="${11:-}"
  {
    printf '{"job_id": %s, "job_name": %s, ' "$(strata_json_str "$job_id")" "$(strata_json_str "$job_name")"
    printf '"nodes": %d, "ranks": %d, "ranks_per_node": %d, ' "$nodes" "$ranks" "$per_node"
    printf '"node_list": %s, "restart": %d, ' "$(strata_json_str "$node_list")" "$restart"
    printf '"launcher": %s, "config": %s, ' "$(strata_json_str "$launcher")" "$(strata_json_str "$CONFIG")"
    printf '"tag": %s, "scaling": %s, ' "$(strata_json_str "${TAG:-}")" "$(strata_json_str "${SCALING:-}")"
    [ -n "$log" ] && printf '"log": %s, ' "$(strata_json_str "$log")"
    if [ -n "$exit_code" ]; then
      printf '"started": %s, ' "$(strata_json_str "${STRATA_JOB_STARTED:-}")"
      printf '"exit_code": %d, "ended": %s}\n' "$exit_code" "$(strata_json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    else
      STRATA_JOB_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
      printf '"started": %s}\n' "$(strata_json_str "$STRATA_JOB_STARTED")"
    fi
  } >"$file.tmp" && mv "$file.tmp" "$file"
}

# Whether this site's Slurm binds tasks to CPUs (srun --cpu-bind): it needs the task/affinity
# or task/cgroup plugin. With task/none srun prints "cluster configuration lacks support for
# cpu binding" for every step.
strata_site_binds_cpus() {
  local plugins
  plugins=$(scontrol show config 2>/dev/null | sed -n 's/^TaskPlugin *= *//p')
  [[ "$plugins" == *affinity* || "$plugins" == *cgroup* ]]
}

# The `strata train` command line of this job (into the array STRATA_TRAIN).
strata_train_args() {
  local run_dir="$1" threads="$2"; shift 2
  STRATA_TRAIN=("$STRATA_BIN" train --config "$CONFIG" --set "train.out_dir=$run_dir" --set train.resume=auto)
  [ -n "$threads" ] && STRATA_TRAIN+=(--set "hardware.threads=$threads")
  local s items=()
  read -ra items <<<"${SET:-}"  # split on blanks, no glob expansion of [ ] or *
  for s in "${items[@]}"; do STRATA_TRAIN+=(--set "$s"); done
  STRATA_TRAIN+=("$@")
}

strata_find_binary() {
  if [ -n "${STRATA:-}" ]; then STRATA_BIN=$STRATA
  elif [ -x "$STRATA_ROOT/build/strata" ]; then STRATA_BIN=$STRATA_ROOT/build/strata
  else STRATA_BIN=$(command -v strata) || strata_die "no strata binary: build it (scripts/build.sh strata) or set STRATA"
  fi
}

strata_run_job() {
  cd "$STRATA_ROOT"
  : "${CONFIG:?CONFIG is not set}"
  [ -f "$CONFIG" ] || strata_die "CONFIG=$CONFIG: no such file (relative paths are from $STRATA_ROOT)"
  strata_find_binary
  local job_id=$SLURM_JOB_ID job_name=${SLURM_JOB_NAME:-strata}
  local nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}} ranks=${SLURM_NTASKS:-1}
  local per_node=$(( (ranks + nodes - 1) / nodes ))
  local restart=${SLURM_RESTART_COUNT:-0}
  # NODES / GPUS_PER_NODE exported at `sbatch` time do not change the allocation (sbatch has
  # read the #SBATCH lines already): say so instead of running a different job than asked.
  if [ -n "${NODES:-}" ] && [ "$NODES" != "$nodes" ]; then
    strata_die "NODES=$NODES but the allocation has $nodes nodes: #SBATCH lines are read before the script runs; use sbatch --nodes=$NODES, or run the script without sbatch to submit it with NODES"
  fi
  if [ -n "${GPUS_PER_NODE:-}" ] && [ "$GPUS_PER_NODE" != "$per_node" ]; then
    strata_die "GPUS_PER_NODE=$GPUS_PER_NODE but the allocation runs $per_node tasks per node; use sbatch --ntasks-per-node=$GPUS_PER_NODE --gpus-per-node=$GPUS_PER_NODE, or run the script without sbatch"
  fi
  local run_dir=${RUN_DIR:-${RUNS:-runs}/${job_name}-${job_id}}
  mkdir -p "$run_dir"
  local launcher=${LAUNCHER:-srun}
  local threads=${SLURM_CPUS_PER_TASK:-}
  # One BLAS/OpenMP thread pool per rank, sized to the CPUs Slurm gave the task.
  export OMP_NUM_THREADS=${threads:-1} OPENBLAS_NUM_THREADS=${threads:-1}
  strata_comm_env
  # More ranks than cores (a test allocation): Open MPI cannot tell under srun, and its ranks
  # would busy-poll each other off the cores (20x slower steps on 2 cores); make them yield.
  local cores; cores=$(getconf _NPROCESSORS_ONLN)  # the node's, not this shell's affinity
  if [ $((per_node * ${threads:-1})) -gt "$cores" ]; then
    export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
    strata_log "$per_node ranks x ${threads:-1} threads on $cores cores: oversubscribed, MPI ranks yield when idle"
  fi
  # The job's output file, for the report's failure reasons.
  local log
  log=$(scontrol show job "$job_id" 2>/dev/null | sed -n 's/^ *StdOut=//p' | head -n 1)
  local node_list=${SLURM_JOB_NODELIST:-$(hostname -s)}
  strata_write_job_json "$run_dir/job.json" "$job_id" "$job_name" "$nodes" "$ranks" "$per_node" \
    "$node_list" "$restart" "$launcher" "$log"
  strata_train_args "$run_dir" "$threads" "$@"
  # The job as every rank's engine will run it, planned here first (what the backend runs, the
  # layout against the allocation, each stage's memory): a job that cannot run stops now with
  # the reason, not after the allocation has started its ranks. The plan stays in the run folder.
  "${STRATA_TRAIN[@]}" --dry-run --ranks "$ranks" >"$run_dir/dry_run.txt" 2>&1 ||
    strata_die "the job cannot run as configured: $(tail -n 1 "$run_dir/dry_run.txt")"

  local launch=() bind_note=""
  case "$launcher" in
    srun)
      launch=(srun --kill-on-bad-exit=1 --ntasks="$ranks" --ntasks-per-node="$per_node")
      case "${CPU_BIND:-}" in
        none) bind_note="no CPU binding (CPU_BIND=none)" ;;
        "")
          if strata_site_binds_cpus; then launch+=(--cpu-bind=cores)
          else bind_note="no CPU binding: this Slurm's TaskPlugin cannot bind tasks (set CPU_BIND to insist)"
          fi ;;
        *) launch+=(--cpu-bind="$CPU_BIND") ;;
      esac
      # Since Slurm 22.05 srun does not inherit sbatch's --cpus-per-task.
      [ -n "$threads" ] && launch+=(--cpus-per-task="$threads")
      [ -n "${SRUN_MPI:-}" ] && launch+=(--mpi="$SRUN_MPI")
      ;;
    mpirun)
      # Open MPI reads the allocation from Slurm itself: per_node ranks on each node, each bound
      # to its cores (MPI_BIND=none where ranks outnumber cores, as on a 2-core test machine).
      local map="ppr:$per_node:node"
      [ -n "$threads" ] && [ "$threads" -gt 1 ] && map+=":PE=$threads"
      local bind=${MPI_BIND:-core}
      [ -z "${MPI_BIND:-}" ] && [ $((per_node * ${threads:-1})) -gt "$cores" ] && bind=none
      launch=(mpirun -np "$ranks" --map-by "$map" --bind-to "$bind")
      ;;
    *) strata_die "LAUNCHER=$launcher: expected srun or mpirun" ;;
  esac
  launch+=(bash "$STRATA_ROOT/slurm/bind.sh")

  strata_log "job $job_id ($job_name) restart $restart: $nodes nodes x $per_node ranks = $ranks ranks on ${SLURM_JOB_NODELIST:-?}"
  strata_log "run folder $run_dir; config $CONFIG; launcher $launcher"
  [ -n "$bind_note" ] && strata_log "$bind_note"
  strata_log "${launch[*]} ${STRATA_TRAIN[*]}"
  local rc=0
  strata_run_step "$job_id" "$restart" "${launch[@]}" "${STRATA_TRAIN[@]}" || rc=$?
  # Not reached when the job requeued itself (strata_run_step exits).
  strata_write_job_json "$run_dir/job.json" "$job_id" "$job_name" "$nodes" "$ranks" "$per_node" \
    "$node_list" "$restart" "$launcher" "$log" "$rc"
  return "$rc"
}

# Runs the job step in the background so that this shell can take signals:
#  - SIGUSR1 (#SBATCH --signal=B:USR1@<s>: Slurm's warning before the time limit, or a site's
#    preemption notice, or `scancel --batch --signal=USR1 <job>`) is forwarded to the step (srun
#    and mpirun pass it on to every rank); strata finishes the current step on all ranks, saves
#    a checkpoint and exits 0; then this shell requeues the job (same job id, same run folder)
#    and the next start resumes from that checkpoint (train.resume=auto).
#  - SIGTERM (scancel, a preemption with PreemptMode=REQUEUE, the time limit itself) is forwarded
#    too, so strata saves what it can; Slurm decides what happens to the job.
strata_run_step() {
  local job_id="$1" restart="$2"; shift 2
  local signal_seen="" step_pid="" rc=0
  # shellcheck disable=SC2064
  trap 'signal_seen=USR1; strata_log "got SIGUSR1: forwarding to the job step (pid $step_pid)"; kill -USR1 "$step_pid" 2>/dev/null || true' USR1
  trap 'signal_seen=${signal_seen:-TERM}; strata_log "got SIGTERM: forwarding to the job step (pid $step_pid)"; kill -TERM "$step_pid" 2>/dev/null || true' TERM
  "$@" &
  step_pid=$!
  # `wait` returns early (status > 128) when a trapped signal arrives; wait again until the step
  # has really ended (a finished step that is not reaped yet still answers kill -0).
  while :; do
    set +e
    wait "$step_pid"
    rc=$?
    set -e
    kill -0 "$step_pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  if [ "$signal_seen" = USR1 ]; then
    if [ "$restart" -ge "${MAX_REQUEUES:-20}" ]; then
      strata_log "step ended with status $rc after SIGUSR1; not requeueing: restarted $restart times (MAX_REQUEUES=${MAX_REQUEUES:-20})"
      return "$rc"
    fi
    strata_log "step ended with status $rc after SIGUSR1; requeueing job $job_id (restart $((restart + 1)))"
    scontrol requeue "$job_id"
    exit 0
  fi
  strata_log "step ended with status $rc"
  return "$rc"
}

# ---- LOCAL=1: the same job on this machine, without Slurm ----------------------------------------
strata_run_local() {
  cd "$STRATA_ROOT"
  : "${CONFIG:?CONFIG is not set}"
  strata_find_binary
  local nodes=${NODES:-1} per_node=${GPUS_PER_NODE:-1}
  [ "$nodes" = 1 ] || strata_die "LOCAL=1 runs on this machine only: NODES must be 1, got $nodes"
  local ranks=$per_node job_id
  job_id=local-$(date -u +%Y%m%d-%H%M%S)-$$
  local job_name=${JOB_NAME:-strata}
  local run_dir=${RUN_DIR:-${RUNS:-runs}/${job_name}-${job_id}}
  mkdir -p "$run_dir"
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  strata_comm_env
  strata_write_job_json "$run_dir/job.json" "$job_id" "$job_name" 1 "$ranks" "$ranks" "$(hostname -s)" 0 mpirun "${LOG:-}"
  strata_train_args "$run_dir" "" "$@"
  strata_log "local run $job_id: $ranks ranks; run folder $run_dir"
  local rc=0
  mpirun --oversubscribe -np "$ranks" bash "$STRATA_ROOT/slurm/bind.sh" "${STRATA_TRAIN[@]}" || rc=$?
  strata_write_job_json "$run_dir/job.json" "$job_id" "$job_name" 1 "$ranks" "$ranks" "$(hostname -s)" 0 mpirun \
    "${LOG:-}" "$rc"
  strata_log "local run ended with status $rc"
  return "$rc"
}
