# A real single-node Slurm cluster on 127.0.0.1 for the slurm tests (facts behind each setting:
# docs/running-on-clusters.md, "Testing with a local Slurm"). Sourced by tests/slurm/*.sh.
#
#   slurm_local_start BASE   write BASE/slurm.conf, start munged, slurmctld and slurmd (each
#                            with its own pid file under BASE), wait until the node is idle,
#                            export SLURM_CONF so sbatch/srun/squeue/scontrol use this cluster
#   slurm_local_stop         SIGTERM the daemons by the pids in their pid files, wait for them
#
# Isolated from anything else on the machine: munged listens on BASE/munge/socket (slurm.conf's
# AuthInfo points Slurm at it), slurmctld and slurmd listen on free ports picked at start, and
# every state, spool, log and pid file is under BASE. So two test runs can share a machine.
# Needs root (slurmd runs jobs as their user) and the packages slurmctld slurmd slurm-client munge.

slurm_local_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_local_start() {
  SLURM_LOCAL_BASE="$1"
  local base="$SLURM_LOCAL_BASE" host mem ctld_port d_port i
  host=$(hostname -s)
  # RealMemory must not exceed what slurmd finds, or the node drains: ask for 90% of free memory.
  mem=$(free -m | awk '/^Mem:/ { print int($7 * 0.9) }')
  ctld_port=$(slurm_local_free_port)
  d_port=$(slurm_local_free_port)
  : "${SLURM_LOCAL_CRED_EXPIRE:=5}"
  # State is wiped at each start: drain reasons survive restarts through the saved state.
  rm -rf "$base/ctld" "$base/d" "$base/munge"
  mkdir -p "$base/ctld" "$base/d" "$base/run" "$base/log" "$base/munge"
  # munged runs as its own user and wants a socket directory that all can enter and none other write.
  chown munge:munge "$base/munge"
  chmod 0755 "$base/munge"
  if ! runuser -u munge -- test -w "$base/munge"; then
    echo "local slurm: the munge user cannot reach $base/munge: every folder above it must be searchable (chmod o+x)"
    return 1
  fi
  cat >"$base/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$base/munge/socket,cred_expire=$SLURM_LOCAL_CRED_EXPIRE
CredType=cred/munge
StateSaveLocation=$base/ctld
SlurmdSpoolDir=$base/d
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
EnforcePartLimits=ALL
MinJobAge=4
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$base/slurm.conf"
  runuser -u munge -- munged --socket="$base/munge/socket" --pid-file="$base/munge/munged.pid" \
    --log-file="$base/munge/munged.log" --seed-file="$base/munge/seed" || return 1
  slurmctld -f "$SLURM_CONF" || return 1
  slurmd -f "$SLURM_CONF" || return 1
  # Cold start to an idle node takes under a second here; allow 30 s.
  for i in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then
      echo "local slurm: node $host idle (ports $ctld_port/$d_port, base $base)"
      return 0
    fi
    sleep 0.5
  done
  echo "local slurm: node not idle after 30 s:"; sinfo -N -l 2>&1; tail -n 20 "$base/log/"*.log
  return 1
}

slurm_local_stop() {
  local base="${SLURM_LOCAL_BASE:-}" f pid pids=()
  [ -n "$base" ] || return 0
  # Jobs still running (a test that failed or timed out half-way) would outlive slurmd in their
  # slurmstepd: cancel them first and give them 15 s to go.
  local jobs
  jobs=$(squeue -h -o %i 2>/dev/null)
  if [ -n "$jobs" ]; then
    echo "local slurm: cancelling jobs left running: $jobs"
    # shellcheck disable=SC2086
    scancel --full $jobs 2>/dev/null
    for _ in $(seq 1 150); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  for f in "$base/run/slurmd.pid" "$base/run/slurmctld.pid" "$base/munge/munged.pid"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" && pids+=("$pid"); fi
  done
  # Each daemon takes ~2 s to exit after SIGTERM; they are not our children, so poll.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "local slurm: pid $pid still running after 10 s; SIGKILL"; kill -KILL "$pid"; }
  done
  SLURM_LOCAL_BASE=""
}
