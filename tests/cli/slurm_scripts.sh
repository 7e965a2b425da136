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
# sbatch: records; with --parsable prints a new job id (101, 102, ...).
cat >"$tmp/bin/sbatch" <<'SH'
#!/usr/bin/env bash
echo "sbatch $*" >>"$FAKE_LOG"
n=$(( $(cat "$FAKE_LOG.ids" 2>/dev/null || echo 100) + 1 )); echo "$n" >"$FAKE_LOG.ids"
[[ " $* " == *" --parsable "* ]] && echo "$n"
exit 0
SH
# scontrol: records; answers `show config` with FAKE_TASKPLUGIN (a site that can bind CPUs by
# default) and `show job` with the job's output file.
cat >"$tmp/bin/scontrol" <<'SH'
#!/usr/bin/env bash
echo "scontrol $*" >>"$FAKE_LOG"
[ "$*" = "show config" ] && echo "TaskPlugin              = ${FAKE_TASKPLUGIN-task/affinity,task/cgroup}"
[ "${1:-} ${2:-}" = "show job" ] && echo "   StdOut=/logs/job-$3.out"
exit 0
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
check "job: job.json, with the log and the step's exit code" python3 - "$tmp/runs/strata-70b-42/job.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert (j["job_id"], j["nodes"], j["ranks"], j["ranks_per_node"], j["node_list"], j["restart"], j["launcher"]) == \
    ("42", 2, 16, 8, "n[1-2]", 0, "srun"), j
assert j["log"] == "/logs/job-42.out" and j["exit_code"] == 0 and j["ended"] >= j["started"], j
PY

# ---- CPU binding only where the site's Slurm can bind (or when asked) ----
srun_line() { grep '^srun ' "$FAKE_LOG" | tail -n 1; }
for case in "task/none||no" "task/affinity||cores" "task/none|sockets|sockets" "task/affinity|none|no"; do
  IFS='|' read -r plugin bind want <<<"$case"
  : >"$FAKE_LOG"
  env "${job_env[@]}" FAKE_TASKPLUGIN="$plugin" CPU_BIND="$bind" bash slurm/pretrain_70b.sh >"$tmp/bind.out" 2>&1
  if [ "$want" = no ]; then
    check "bind: TaskPlugin $plugin, CPU_BIND='$bind': no --cpu-bind" bash -c "! grep -q -- --cpu-bind <<<'$(srun_line)'"
  else
    check "bind: TaskPlugin $plugin, CPU_BIND='$bind': --cpu-bind=$want" grep -q -- "--cpu-bind=$want " <<<"$(srun_line)"
  fi
done
check "bind: says why there is none" grep -q "no CPU binding (CPU_BIND=none)" "$tmp/bind.out"

# ---- a failing step: its status is the job's and job.json records it ----
cat >"$tmp/bin/srun" <<'SH'
#!/usr/bin/env bash
echo "srun $*" >>"$FAKE_LOG"
exit 3
SH
env "${job_env[@]}" SLURM_JOB_ID=43 bash slurm/pretrain_70b.sh >"$tmp/fail.out" 2>&1
rc=$?
check "failed step: the job exits with its status" test $rc -eq 3
check "failed step: job.json has exit_code 3" grep -q '"exit_code": 3' "$tmp/runs/strata-70b-43/job.json"
cat >"$tmp/bin/srun" <<'SH'
#!/usr/bin/env bash
echo "srun $*" >>"$FAKE_LOG"
echo "env OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS NCCL_DEBUG=$NCCL_DEBUG" >>"$FAKE_LOG"
trap 'echo "srun got USR1" >>"$FAKE_LOG"; exit 0' USR1
for _ in $(seq 1 $((${FAKE_STEP_S:-0} * 10))); do sleep 0.1; done
SH
chmod +x "$tmp/bin/srun"
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

# ---- scaling_study.sh: every point checked first; refused points are not submitted ----
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
study_env=(STRATA="$strata" STUDIES="$tmp/studies" NODES_LIST="1 2 3 4" GPUS_PER_NODE=2 SCRIPT=slurm/pretrain_tiny.sh
           SET="parallel.pp=1" STEPS=10 CLUSTER=local)
: >"$FAKE_LOG"
env "${study_env[@]}" STUDY=only CHECK=only bash slurm/scaling_study.sh >"$tmp/only.out" 2>&1
rc=$?
check "study CHECK=only: exit 1 (a point is refused)" test $rc -eq 1
check "study CHECK=only: the 3-node point refused with the batch rule" \
  grep -q "refused: batch: parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (4 x 3 = 12)" "$tmp/only.out"
check "study CHECK=only: the others predicted" test "$(grep -c ': ok (predicted step' "$tmp/only.out")" -eq 3
check "study CHECK=only: nothing submitted" bash -c "! grep -q '^sbatch' '$FAKE_LOG'"
: >"$FAKE_LOG"
env "${study_env[@]}" STUDY=serial bash slurm/scaling_study.sh >"$tmp/serial.out" 2>&1
rc=$?
check "study serial: exit 0 (submitted; the report comes later)" test $rc -eq 0
check "study serial: 3 jobs, the 3-node point not submitted" test "$(grep -c '^sbatch ' "$FAKE_LOG")" -eq 3
first=$(grep '^sbatch ' "$FAKE_LOG" | head -n 1)
check "study serial: the first job waits for none" bash -c "! grep -q -- --dependency <<<'$first'"
check "study serial: each later job waits for the one before" \
  test "$(grep -o -- '--dependency=afterany:[0-9]*' "$FAKE_LOG" | paste -sd ' ')" = \
       "--dependency=afterany:$(($(cat "$FAKE_LOG.ids") - 2)) --dependency=afterany:$(($(cat "$FAKE_LOG.ids") - 1))"
check "study serial: exclusive jobs of 2 ranks per node" grep -q -- "--job-name=serial-n4r8 --nodes=4 --ntasks-per-node=2 --exclusive" "$FAKE_LOG"
check "study serial: study.jsonl records the refusal and the jobs" python3 - "$tmp/studies/serial/study.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
head = [r for r in recs if "study" in r]
assert len(head) == 1 and head[0]["cluster"].endswith("local.yaml"), head
pts = {r["point"]: r for r in recs if "point" in r}
assert pts["serial-n3r6"]["status"] == "refused" and "global_batch_size (16)" in pts["serial-n3r6"]["reason"], pts
for n, r in (("1", 2), ("2", 4), ("4", 8)):
    p = pts["serial-n%sr%d" % (n, r)]
    assert p["status"] == "submitted" and p["run_dir"].endswith("/runs/serial-n%sr%d-%s" % (n, r, p["job_id"])), p
    assert p["log"].endswith("/logs/serial-n%sr%d-%s.out" % (n, r, p["job_id"])), p
PY
: >"$FAKE_LOG"
env "${study_env[@]}" STUDY=conc ORDER=concurrent CHECK=warn bash slurm/scaling_study.sh >"$tmp/conc.out" 2>&1
check "study concurrent, CHECK=warn: 4 jobs, none waiting for another" \
  bash -c "test \$(grep -c '^sbatch ' '$FAKE_LOG') -eq 4 && ! grep -q -- --dependency '$FAKE_LOG'"
env "${study_env[@]}" STUDY=weak MODE=weak MICROBATCHES=2 CHECK=only bash slurm/scaling_study.sh >"$tmp/weak.out" 2>&1
rc=$?
check "study weak: every point fits (the batch grows with dp: 4 x 3 x 2 = 24 at 3 nodes)" \
  bash -c "test $rc -eq 0 && grep -q 'global batch 24 (2 micro-batches per DP rank)' '$tmp/studies/weak/points/weak-n3r6.plan.txt'"
env "${study_env[@]}" STUDY=bad MODE=sideways bash slurm/scaling_study.sh >"$tmp/bad.out" 2>&1
rc=$?
check "study: a bad MODE is refused with exit 2" bash -c "test $rc -eq 2 && grep -q 'MODE=sideways: expected strong or weak' '$tmp/bad.out'"

# ---- strata plan prints a launch line for slurm/pretrain.sh ----
line=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$strata" plan --model llama2_70b --gpu h100 \
  --gpus 512 --job configs/pretrain_70b.yaml | grep '^sbatch')
check "plan: launch line uses slurm/pretrain.sh with the job config" \
  grep -q "^sbatch --nodes=64 --ntasks-per-node=8 --gpus-per-node=8 --export=ALL,CONFIG=configs/pretrain_70b.yaml slurm/pretrain.sh --set model=" <<<"$line"
check "plan: slurm/pretrain.sh exists" test -x slurm/pretrain.sh
[ "$failures" -eq 0 ]
