#!/usr/bin/env bash
# End to end under a real Slurm (label slurm): a single-node cluster on 127.0.0.1 (munged,
# slurmctld, slurmd; tests/slurm/local_cluster.bash), then
#   1. sbatch --wait slurm/pretrain_tiny.sh: 8 ranks (tp2 pp2 dp2) on the demo corpus; the job
#      succeeds, the loss falls, a checkpoint is published
#   2. a second job gets the preemption signal (scancel --batch --signal=USR1, what
#      --signal=B:USR1@... sends before the time limit), saves, requeues itself, resumes from its
#      checkpoint in the same run folder and finishes
#   3. the same job through Open MPI's mpirun inside the allocation (LAUNCHER=mpirun)
# Scaling studies, and preemption and failures across nodes, are in multinode.sh (4 nodes).
# The daemons are stopped by the pids they wrote, on success and on failure.
# usage: pretrain_tiny.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok   $* ($(elapsed))"; }

# shellcheck source=tests/slurm/local_cluster.bash
source "$src/tests/slurm/local_cluster.bash"
slurm_local_require

tmp=$(mktemp -d /tmp/strata-slurm-test.XXXXXX)
chmod 0755 "$tmp"  # munged runs as the munge user and keeps its socket below
cleanup() {
  slurm_local_stop
  if [ "$failures" -gt 0 ]; then
    echo "--- slurmctld/slurmd log tails ---"
    tail -n 15 "$tmp/slurm/log/slurmctld.log" "$tmp/slurm/log/slurmd-node1.log" 2>/dev/null
    echo "(kept $tmp)"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

# The demo corpus as token datasets (the demo's own prepare step, without its training).
bash "$src/scripts/prepare-demo-data.sh" "$strata" "$tmp/data" >"$tmp/prepare.log" 2>&1 ||
  { cat "$tmp/prepare.log"; fail "preparing the demo data"; exit 1; }
ok "demo data prepared"
slurm_local_start "$tmp/slurm" || { fail "local Slurm did not start"; exit 1; }

cd "$src"
export STRATA="$strata" RUNS="$tmp/runs"   # CPU binding: launch.sh sees the cluster's task/none
export OPENBLAS_NUM_THREADS=1
data_set="data.datasets=[{path: $tmp/data/kjv.h5, weight: 0.6}, {path: $tmp/data/fortunes.h5, weight: 0.4}]"
mkdir -p "$tmp/logs"

# Mean loss of steps [from, to] of a metrics file.
mean_loss() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "step_ms" in r: rows[r["step"]] = r["loss"]  # step records, not validation records
sel = [rows[s] for s in range(int(sys.argv[2]), int(sys.argv[3]) + 1) if s in rows]
print(sum(sel) / len(sel) if sel else "nan")
PY
}

# ---- 1. one job: 8 ranks, loss falls, checkpoint published -------------------------------------
SET="train.steps=60 ckpt.interval=30" timeout 180 sbatch --wait --parsable --output="$tmp/logs/%x-%j.out" \
  slurm/pretrain_tiny.sh --set "$data_set" >"$tmp/job1.id"
rc=$?
id1=$(head -1 "$tmp/job1.id")
log1="$tmp/logs/strata-tiny-$id1.out"
run1="$tmp/runs/strata-tiny-$id1"
grep -v '^  ' "$log1" 2>/dev/null | grep -E 'strata-slurm|step +(1|30|60)/|error' | head -20
if [ $rc -ne 0 ]; then fail "job 1: sbatch --wait exit code $rc"
elif ! grep -q "step ended with status 0" "$log1"; then fail "job 1: the step did not end with status 0 (log $log1)"
elif ! grep -q "8 ranks on" "$log1" || ! grep -q "layout: tp 2 x pp 2 x dp 2 = 8 ranks" "$log1"; then
  fail "job 1: not 8 ranks as tp2 pp2 dp2"
else
  steps=$(grep -c '"lr"' "$run1/metrics.jsonl")
  first=$(printf '%.3f' "$(mean_loss "$run1/metrics.jsonl" 1 5)")
  last=$(printf '%.3f' "$(mean_loss "$run1/metrics.jsonl" 51 60)")
  if [ "$steps" -ne 60 ]; then fail "job 1: $steps steps in metrics.jsonl, want 60"
  elif ! python3 -c "import sys; sys.exit(0 if $last < $first - 1.0 else 1)"; then
    fail "job 1: loss did not fall: steps 1-5 $first, steps 51-60 $last"
  else ok "job 1 ($id1): 8 ranks, 60 steps, loss $first -> $last"
  fi
  # The local cluster has TaskPlugin=task/none: launch.sh must not ask srun for CPU binding.
  if grep -q "lacks support for cpu binding" "$log1"; then fail "job 1: srun was asked for CPU binding the cluster cannot do"
  elif ! grep -q "no CPU binding: this Slurm's TaskPlugin cannot bind tasks" "$log1"; then fail "job 1: no note on CPU binding"
  else ok "job 1: no --cpu-bind where the site cannot bind"
  fi
  latest=$(cat "$run1/checkpoints/latest" 2>/dev/null)
  if [ "$latest" != "step_00000060.h5" ] || [ ! -s "$run1/checkpoints/$latest" ]; then
    fail "job 1: no published checkpoint: $run1/checkpoints/latest = '$latest' (awaits the checkpoint module)"
  else ok "job 1: checkpoint $latest published"
  fi
fi

# ---- 2. preemption: SIGUSR1 -> checkpoint -> requeue -> resume -> finish ------------------------
steps2=120
SET="train.steps=$steps2 ckpt.interval=0" timeout 240 sbatch --wait --parsable --output="$tmp/logs/%x-%j.out" \
  slurm/pretrain_tiny.sh --set "$data_set" >"$tmp/job2.id" &
wait_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/job2.id" ] && break; sleep 0.2; done
id2=$(head -1 "$tmp/job2.id")
log2="$tmp/logs/strata-tiny-$id2.out"
run2="$tmp/runs/strata-tiny-$id2"
# Signal once training is under way (step 20 logged), as Slurm's --signal=B:USR1@<s> would.
for _ in $(seq 1 300); do grep -q "step  *20/$steps2" "$log2" 2>/dev/null && break; sleep 0.2; done
scancel --batch --signal=USR1 "$id2" || fail "job 2: scancel --signal=USR1 failed"
wait "$wait_pid"
rc=$?
grep -v '^  ' "$log2" | grep -E 'strata-slurm|stopped at|resum|step +(1|20|300)/|error|CANCELLED' | head -30
stopped=$(sed -n "s/^strata: stopped at step \([0-9]*\) on signal SIGUSR1; checkpoint saved to \(.*\)$/\1/p" "$log2" | head -1)
if [ $rc -ne 0 ]; then fail "job 2: sbatch --wait exit code $rc"
elif ! grep -q "got SIGUSR1: forwarding" "$log2"; then fail "job 2: the batch shell did not get SIGUSR1"
elif ! grep -q "requeueing job $id2 (restart 1)" "$log2"; then fail "job 2: not requeued"
elif ! grep -q "job $id2 (strata-tiny) restart 1:" "$log2"; then fail "job 2: the requeued job did not start again"
elif [ "$(grep -c 'step ended with status 0' "$log2")" -lt 1 ] || [ "$(tail -n 3 "$log2" | grep -c 'step ended with status 0')" -ne 1 ]; then
  fail "job 2: the resumed run did not end with status 0"
elif [ -z "$stopped" ]; then
  fail "job 2: no 'strata: stopped at step N on signal SIGUSR1; checkpoint saved to ...' (awaits the checkpoint module)"
else
  ckpt=$(printf '%s/checkpoints/step_%08d.h5' "$run2" "$stopped")
  # After the restart the run continues from step stopped+1: step 1 is not logged again, and
  # the last step is the run's last.
  after=$(sed -n '/restart 1:/,$p' "$log2")
  metric_steps=$(python3 -c "import json,sys; print(' '.join(str(r['step']) for r in map(json.loads, open(sys.argv[1])) if 'step_ms' in r))" \
    "$run2/metrics.jsonl")
  if [ ! -s "$ckpt" ]; then fail "job 2: checkpoint $ckpt missing"
  elif ! grep -qF "resumed from $ckpt: step $stopped" <<<"$after"; then fail "job 2: the requeued run did not resume from $ckpt"
  elif grep -q "step  *1/$steps2" <<<"$after"; then fail "job 2: the requeued run started again from step 1"
  elif [ "$metric_steps" != "$(seq -s ' ' 1 $steps2)" ]; then fail "job 2: metrics.jsonl steps are not 1..$steps2 once each"
  elif ! grep -q "step  *$steps2/$steps2" <<<"$after"; then fail "job 2: the requeued run did not reach step $steps2"
  elif [ "$(ls -d "$tmp"/runs/strata-tiny-"$id2"* | wc -l)" -ne 1 ]; then fail "job 2: more than one run folder"
  else ok "job 2 ($id2): stopped at step $stopped on SIGUSR1, requeued, resumed in $run2, finished $steps2 steps"
  fi
fi

# ---- 3. the mpirun fallback inside the allocation ------------------------------------------------
LAUNCHER=mpirun MPI_BIND=none SET="train.steps=10 ckpt.save_at_end=false" timeout 120 sbatch --wait --parsable \
  --ntasks-per-node=4 --job-name=strata-tiny-mpirun --output="$tmp/logs/%x-%j.out" slurm/pretrain_tiny.sh \
  --set "$data_set" --set parallel.pp=1 >"$tmp/job3.id"
rc=$?
id3=$(head -1 "$tmp/job3.id")
log3="$tmp/logs/strata-tiny-mpirun-$id3.out"
if [ $rc -ne 0 ] || ! grep -q "step ended with status 0" "$log3" || ! grep -q "tp 2 x pp 1 x dp 2 = 4 ranks" "$log3"; then
  grep -v '^  ' "$log3" | tail -n 20; fail "job 3: LAUNCHER=mpirun run failed (exit code $rc)"
else ok "job 3 ($id3): 4 ranks through mpirun"
fi

echo "slurm test: $failures failure(s) in $(elapsed)"
[ "$failures" -eq 0 ]
