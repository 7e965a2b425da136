# A real Slurm cluster on 127.0.0.1 for the slurm tests, of one node or of several nodes
# emulated on this one host (facts behind each setting: docs/running-on-clusters.md, "Testing
# with a local Slurm"). Sourced by tests/slurm/*.sh.
#
#   slurm_local_start BASE [NODES [CPUS]]
#                            write BASE/slurm.conf, start munged, slurmctld and one slurmd per
#                            node (node1..nodeN, each `slurmd -N nodeK` with its own port, spool,
#                            pid and log file under BASE), wait until every node is idle, export
#                            SLURM_CONF so sbatch/srun/squeue/scontrol use this cluster.
#                            NODES default 1; CPUS (task slots per node) default 8.
#   slurm_local_stop         SIGTERM the daemons by the pids in their pid files, wait for them
#   slurm_local_require      exit 77 (skip) unless root; install the packages when missing
#
# Several nodes on one host need (SLURM_LOCAL.md, "Several nodes on one host"):
#   - TmpFS=BASE/tmp/%n: Slurm's PMIx plugin makes <TmpFS>/spmix_appdir_<uid>_<job>.<step> on
#     every node; with a shared /tmp the second node's directory exists already and its task
#     launch fails ("pmixp_mkdir ... File exists");
#   - a TaskProlog that gives each node's tasks their own Open MPI shared-memory directory
#     (OMPI_MCA_btl_vader_backing_directory) and TMPDIR: ranks of different "nodes" must not
#     share shared-memory files (SIGSEGV in mca_btl_vader at the first cross-node all-reduce);
#     not set for the batch step, or mpirun would forward one node's value to all. It also sets
#     OMPI_MCA_btl_tcp_if_include=lo, so that between "nodes" Open MPI really uses TCP.
#
# Isolated from anything else on the machine: munged listens on BASE/munge/socket (slurm.conf's
# AuthInfo points Slurm at it), slurmctld and slurmd listen on free ports picked at start, and
# every state, spool, log and pid file is under BASE. So two test runs can share a machine.
# Needs root (slurmd runs jobs as their user) and the packages slurmctld slurmd slurm-client munge.

slurm_local_require() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: slurmd runs jobs as their user and needs root here; run the slurm tests as root (CI does)"
    exit 77
  fi
  # Packages: installed once (apt-get update first), skipped when present.
  local need=(slurmctld slurmd slurm-client munge gnuplot-nox) missing=() p
  for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { echo "FAIL: could not install ${missing[*]}"; exit 1; }
  fi
}

slurm_local_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_local_start() {
  SLURM_LOCAL_BASE="$1"
  local nodes="${2:-1}" cpus="${3:-8}"
  local base="$SLURM_LOCAL_BASE" host mem ctld_port i k
  host=$(hostname -s)
  # RealMemory must not exceed what slurmd finds, or the node drains: ask for 90% of free
  # memory, split over the nodes that share it.
  mem=$(free -m | awk -v n="$nodes" '/^Mem:/ { print int($7 * 0.9 / n) }')
  ctld_port=$(slurm_local_free_port)
  : "${SLURM_LOCAL_CRED_EXPIRE:=5}"
  # State is wiped at each start: drain reasons survive restarts through the saved state.
  rm -rf "$base/ctld" "$base/d" "$base/munge" "$base/tmp"
  mkdir -p "$base/ctld" "$base/run" "$base/log" "$base/munge"
  for k in $(seq 1 "$nodes"); do mkdir -p "$base/d/node$k" "$base/tmp/node$k"; done
  # munged runs as its own user and wants a socket directory that all can enter and none other write.
  chown munge:munge "$base/munge"
  chmod 0755 "$base/munge"
  if ! runuser -u munge -- test -w "$base/munge"; then
    echo "local slurm: the munge user cannot reach $base/munge: every folder above it must be searchable (chmod o+x)"
    return 1
  fi
  # Per-node environment of the tasks (not of the batch step, whose TaskProlog has no SLURM_STEP_ID).
  cat >"$base/task_prolog.sh" <<PROLOG
#!/bin/sh
[ -n "\${SLURM_STEP_ID:-}" ] || exit 0
echo "export OMPI_MCA_btl_vader_backing_directory=$base/tmp/\$SLURMD_NODENAME"
echo "export TMPDIR=$base/tmp/\$SLURMD_NODENAME"
echo "export OMPI_MCA_btl_tcp_if_include=lo"
PROLOG
  chmod 0755 "$base/task_prolog.sh"
  cat >"$base/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$base/munge/socket,cred_expire=$SLURM_LOCAL_CRED_EXPIRE
CredType=cred/munge
StateSaveLocation=$base/ctld
SlurmdSpoolDir=$base/d/%n
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd-%n.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd-%n.log
TmpFS=$base/tmp/%n
TaskProlog=$base/task_prolog.sh
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
CONF
  for k in $(seq 1 "$nodes"); do
    echo "NodeName=node$k NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(slurm_local_free_port) CPUs=$cpus RealMemory=$mem State=UNKNOWN" >>"$base/slurm.conf"
  done
  echo "PartitionName=debug Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP" >>"$base/slurm.conf"
  SLURM_LOCAL_NODES=$nodes
  export SLURM_CONF="$base/slurm.conf"
  runuser -u munge -- munged --socket="$base/munge/socket" --pid-file="$base/munge/munged.pid" \
    --log-file="$base/munge/munged.log" --seed-file="$base/munge/seed" || return 1
  slurmctld -f "$SLURM_CONF" || return 1
  for k in $(seq 1 "$nodes"); do slurmd -f "$SLURM_CONF" -N "node$k" || return 1; done
  # Cold start to idle nodes takes about a second here; allow 30 s.
  for i in $(seq 1 60); do
    if [ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -cx 'idle')" -eq "$nodes" ]; then
      echo "local slurm: $nodes node(s) idle on $host (slurmctld port $ctld_port, base $base)"
      return 0
    fi
    sleep 0.5
  done
  echo "local slurm: nodes not idle after 30 s:"; sinfo -N -l 2>&1; tail -n 20 "$base/log/"*.log
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
  for f in "$base"/run/slurmd-node*.pid "$base/run/slurmctld.pid" "$base/munge/munged.pid"; do
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
