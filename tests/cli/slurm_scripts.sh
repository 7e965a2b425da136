#!/usr/bin/env bash
# The Slurm scripts without Slurm (tests/slurm/ runs them under a real one): headers, the
# self-submission command, the job's srun line and job.json, the geometry check, SIGUSR1 ->
# forward -> requeue, GPU binding by local rank, and strata plan's launch line naming a real
# script. sbatch, srun and scontrol are stand-ins on PATH that record what they were asked.
# usage: slurm_scripts.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
cd "$src"

# ---- headers ----
for s in slurm/*.sh; do check "$s: bash syntax" bash -n "$s"; done
for size in 7b 13b 70b 175b tiny; do
  s=slurm/pretrain_$size.sh
  # sbatch reads #SBATCH lines only up to the first command.
  header=$(awk '/^[^#]/ && NF { exit } { print }' "$s")
  for opt in "--job-name=strata-$size" --nodes= --ntasks-per-node= --cpus-per-task= --time= "--signal=B:USR1@" \
             --requeue --open-mode=append "--output=logs/%x-%j.out"; do
    check "$s: #SBATCH $opt" grep -q -- "^#SBATCH $opt" <<<"$header"
  done
  [ "$size" = tiny ] || check "$s: #SBATCH --gpus-per-node" grep -q -- "^#SBATCH --gpus-per-node=" <<<"$header"
  config=$(sed -n 's/^CONFIG=\${CONFIG:-\(.*\)}$/\1/p' "$s")
  check "$s: default CONFIG $config exists" test -f "$config"
done
check "logs/ exists for #SBATCH --output" test -d logs

# ---- stand-ins for Slurm's commands ----
mkdir -p "$tmp/bin"
cat >"$tmp/bin/sbatch" <<'SH'
#!/usr/bin/env bash
echo "sbatch $*" >>"$FAKE_LOG"
SH
cat >"$tmp/bin/scontrol" <<'SH'
#!/usr/bin/env bash
echo "scontrol $*" >>"$FAKE_LOG"
SH
# srun: records its arguments and job environment, then runs like a training step that
# stops on SIGUSR1 with status 0 (as strata does), or finishes after FAKE_STEP_S seconds.
cat >"$tmp/bin/srun" <<'SH'
#!/usr/bin/env bash
echo "srun $*" >>"$FAKE_LOG"
echo "env OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS NCCL_DEBUG=$NCCL_DEBUG" >>"$FAKE_LOG"
trap 'echo "srun got USR1" >>"$FAKE_LOG"; exit 0' USR1
for _ in $(seq 1 $((${FAKE_STEP_S:-0} * 10))); do sleep 0.1; done
SH
# The strata binary of the job: its dry run (launch.sh plans the job before srun) succeeds.
cat >"$tmp/bin/strata-standin" <<'SH'
#!/usr/bin/env bash
echo "strata $*" >>"$FAKE_LOG"
SH
chmod +x "$tmp/bin/"*
export PATH="$tmp/bin:$PATH" FAKE_LOG="$tmp/fake.log"

# ---- self-submission: NODES / GPUS_PER_NODE become sbatch options ----
: >"$FAKE_LOG"
(unset SLURM_JOB_ID; cd "$tmp" && NODES=4 GPUS_PER_NODE=4 TIME=01:00:00 bash "$src/slurm/pretrain_70b.sh" --set train.steps=5 >/dev/null)
check "submit: sbatch with the environment's geometry" \
  grep -qx "sbatch --nodes=4 --ntasks-per-node=4 --gpus-per-node=4 --time=01:00:00 $src/slurm/pretrain_70b.sh --set train.steps=5" "$FAKE_LOG"
: >"$FAKE_LOG"
(unset SLURM_JOB_ID; cd "$tmp" && GPUS_PER_NODE=2 bash "$src/slurm/pretrain_tiny.sh" >/dev/null)
check "submit: a CPU script asks for no GPUs" grep -qx "sbatch --ntasks-per-node=2 $src/slurm/pretrain_tiny.sh" "$FAKE_LOG"

# ---- the job: srun line, environment, run folder, job.json ----
job_env=(SLURM_JOB_ID=42 SLURM_JOB_NAME=strata-70b SLURM_JOB_NUM_NODES=2 SLURM_NTASKS=16 SLURM_CPUS_PER_TASK=12
         SLURM_JOB_NODELIST="n[1-2]" STRATA_ROOT="$src" RUNS="$tmp/runs" STRATA="$tmp/bin/strata-standin")
: >"$FAKE_LOG"
env "${job_env[@]}" SET="optim.lr=1e-4 train.log_interval=1" bash slurm/pretrain_70b.sh --set "data.datasets=[a.h5, b.h5]" \
  >"$tmp/job.out" 2>&1
rc=$?
check "job: exit 0" test $rc -eq 0
check "job: srun line" grep -qxF "srun --kill-on-bad-exit=1 --ntasks=16 --ntasks-per-node=8 --cpu-bind=cores --cpus-per-task=12 bash $src/slurm/bind.sh $tmp/bin/strata-standin train --config configs/pretrain_70b.yaml --set train.out_dir=$tmp/runs/strata-70b-42 --set train.resume=auto --set hardware.threads=12 --set optim.lr=1e-4 --set train.log_interval=1 --set data.datasets=[a.h5, b.h5]" "$FAKE_LOG"
check "job: the engine's dry run before srun" grep -q -- "--set data.datasets=\[a.h5, b.h5\] --dry-run --ranks 16$" "$FAKE_LOG"
check "job: threads from --cpus-per-task, NCCL default" grep -qx "env OMP_NUM_THREADS=12 OPENBLAS_NUM_THREADS=12 NCCL_DEBUG=WARN" "$FAKE_LOG"
check "job: job.json" python3 - "$tmp/runs/strata-70b-42/job.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert (j["job_id"], j["nodes"], j["ranks"], j["ranks_per_node"], j["node_list"], j["restart"], j["launcher"]) == \
    ("42", 2, 16, 8, "n[1-2]", 0, "srun"), j
PY
check "job: no requeue without a signal" bash -c "! grep -q requeue '$FAKE_LOG'"

# NODES at sbatch time cannot change the allocation: the job says so instead of running.
env "${job_env[@]}" NODES=4 bash slurm/pretrain_70b.sh >"$tmp/mismatch.out" 2>&1
rc=$?
check "job: NODES disagreeing with the allocation stops it" test $rc -ne 0
check "job: ... with a message" grep -q "NODES=4 but the allocation has 2 nodes" "$tmp/mismatch.out"

# ---- SIGUSR1 to the batch shell: forwarded to the step, then the job requeues itself ----
: >"$FAKE_LOG"
env "${job_env[@]}" SLURM_RESTART_COUNT=2 FAKE_STEP_S=30 bash slurm/pretrain_70b.sh >"$tmp/usr1.out" 2>&1 &
job=$!
for _ in $(seq 1 100); do grep -q "^srun " "$FAKE_LOG" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
kill -USR1 "$job"
wait "$job"
rc=$?
check "usr1: batch shell exits 0" test $rc -eq 0
check "usr1: forwarded to the step" grep -q "srun got USR1" "$FAKE_LOG"
check "usr1: scontrol requeue of the job" grep -qx "scontrol requeue 42" "$FAKE_LOG"
check "usr1: logged with the restart count" grep -q "requeueing job 42 (restart 3)" "$tmp/usr1.out"
: >"$FAKE_LOG"
env "${job_env[@]}" SLURM_RESTART_COUNT=20 FAKE_STEP_S=30 bash slurm/pretrain_70b.sh >"$tmp/max.out" 2>&1 &
job=$!
for _ in $(seq 1 100); do grep -q "^srun " "$FAKE_LOG" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
kill -USR1 "$job"; wait "$job"
check "usr1: no requeue after MAX_REQUEUES restarts" bash -c "! grep -q 'scontrol requeue' '$FAKE_LOG'"

# ---- bind.sh: local rank i gets the i-th visible GPU ----
check "bind: local rank 2 of 0,1,2,3 -> GPU 2" \
  test "$(CUDA_VISIBLE_DEVICES=0,1,2,3 SLURM_LOCALID=2 bash slurm/bind.sh bash -c 'echo $CUDA_VISIBLE_DEVICES')" = 2
check "bind: one visible GPU is kept" \
  test "$(CUDA_VISIBLE_DEVICES=5 SLURM_LOCALID=3 bash slurm/bind.sh bash -c 'echo $CUDA_VISIBLE_DEVICES')" = 5

# ---- strata plan prints a launch line for slurm/pretrain.sh ----
line=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$strata" plan --model llama2_70b --gpu h100 \
  --gpus 512 --job configs/pretrain_70b.yaml | grep '^sbatch')
check "plan: launch line uses slurm/pretrain.sh with the job config" \
  grep -q "^sbatch --nodes=64 --ntasks-per-node=8 --gpus-per-node=8 --export=ALL,CONFIG=configs/pretrain_70b.yaml slurm/pretrain.sh --set model=" <<<"$line"
check "plan: slurm/pretrain.sh exists" test -x slurm/pretrain.sh
[ "$failures" -eq 0 ]
