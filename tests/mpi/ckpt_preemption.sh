#!/usr/bin/env bash
# Preemption and crash safety of checkpoints (docs/checkpoints.md), on 4 ranks (tp2·pp2):
#   1. SIGUSR1 sent to mpiexec (which forwards it to every rank) and SIGTERM sent to ONE rank
#      each make every rank finish its step, save a checkpoint and exit 0, saying where;
#      `train.resume: auto` then continues from it, the metrics steps continuing without gap;
#   2. SIGKILL in the middle of a save (held there by STRATA_TEST_SAVE_PAUSE of the test-only
#      binary strata-faults) leaves the previous checkpoint published and loadable, and a
#      resumed run finishes.
# usage: ckpt_preemption.sh STRATA_BINARY SOURCE_DIR FAULTS_BINARY
set -uo pipefail
strata="$1"; src="$2"; faults="$3"
tmp=$(mktemp -d); trap 'pkill -KILL -P $$ 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; grep -v "^  " "$f" | tail -n 12; done; exit 1; }
train() {  # train OUT_DIR [--set ...]: 4 ranks of $bin (default: strata) in the background; sets $job
  local out="$1"; shift
  mpiexec -n 4 --oversubscribe "${bin:-$strata}" train --config "$src/configs/test_tiny.yaml" --set parallel.tp=2 \
    --set parallel.pp=2 --set parallel.micro_batch_size=2 --set parallel.global_batch_size=8 \
    --set train.log_interval=1000 --set "train.out_dir=$out" "$@" >"$out.log" 2>&1 &
  job=$!
}
wait_for() {  # wait_for SECONDS CONDITION...: poll until the condition holds
  local limit=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$limit" ] || return 1; sleep 0.2; done
}
steps_done() { [ "$(wc -l <"$1/metrics.jsonl" 2>/dev/null || echo 0)" -ge "$2" ]; }
# step lines only (validation lines {"step": S, "valid_loss": ...} repeat a step)
metric_steps() { sed -n 's/^{"step": \([0-9]*\), "loss".*/\1/p' "$1/metrics.jsonl" | tr '\n' ' '; }

for how in usr1-to-mpiexec term-to-one-rank; do
  run="$tmp/$how"
  train "$run" --set train.steps=100000
  wait_for 60 steps_done "$run" 3 || fail "$how: the run did not start"
  if [ "$how" = usr1-to-mpiexec ]; then
    signal=SIGUSR1; sent="SIGUSR1 to mpiexec (pid $job)"; kill -USR1 "$job"
  else
    children=$(pgrep -P "$job" | tr '\n' ' ')
    signal=SIGTERM; rank=$(pgrep -P "$job" | tail -n 1)
    sent="SIGTERM to pid $rank, of mpiexec (pid $job)'s children: $children"
    kill -TERM "$rank" || fail "$how: could not send $sent"
  fi
  wait_for 60 bash -c "! kill -0 $job 2>/dev/null" || fail "$how: the job did not stop within 60 s of $sent"
  wait "$job"; rc=$?
  [ $rc -eq 0 ] || fail "$how: exit code $rc, expected 0"
  line=$(grep "strata: stopped at step" "$run.log") || fail "$how: no stop message after $sent"
  step=$(echo "$line" | sed -n "s/.*stopped at step \([0-9]*\) on signal $signal; checkpoint saved to .*/\1/p")
  [ -n "$step" ] || fail "$how: unexpected stop message: $line"
  saved=$(printf "%s/checkpoints/step_%08d.h5" "$run" "$step")
  echo "$line" | grep -qF "$saved" || fail "$how: the message does not name $saved"
  [ "$(cat "$run/checkpoints/latest")" = "$(basename "$saved")" ] || fail "$how: latest does not point to $saved"
  # Resume to three more steps.
  train "$run" --set train.steps=$((step + 3)) --set train.resume=auto
  wait "$job" || fail "$how: the resumed run failed"
  grep -q "resumed from $saved: step $step" "$run.log" || fail "$how: did not resume from $saved"
  expected=$(seq -s ' ' 1 $((step + 3)))
  [ "$(metric_steps "$run")" = "$expected " ] || fail "$how: metrics steps '$(metric_steps "$run")', expected '$expected'"
  echo "ok: $how stopped every rank at step $step with exit 0, saved $saved; resumed to step $((step + 3))"
done

# Killed during a save: the save of step 4 pauses halfway through its tensors.
run="$tmp/killed"
bin="$faults" STRATA_TEST_SAVE_PAUSE="step=4,seconds=60" train "$run" --set train.steps=6 --set ckpt.interval=2
wait_for 60 test -e "$run/checkpoints/.step_00000004.h5.tmp" || fail "killed: the save of step 4 did not start"
pkill -KILL -P "$job"; kill -KILL "$job" 2>/dev/null; wait "$job" 2>/dev/null
[ "$(cat "$run/checkpoints/latest")" = "step_00000002.h5" ] || fail "killed: latest changed to $(cat "$run/checkpoints/latest")"
[ ! -e "$run/checkpoints/step_00000004.h5" ] || fail "killed: a half-written step 4 was published"
train "$run" --set train.steps=6 --set train.resume=auto --set ckpt.interval=2
wait "$job" || fail "killed: resuming from step 2 failed"
grep -q "resumed from $run/checkpoints/step_00000002.h5: step 2" "$run.log" || fail "killed: did not resume from step 2"
[ "$(metric_steps "$run")" = "1 2 3 4 5 6 " ] || fail "killed: metrics steps '$(metric_steps "$run")'"
[ ! -e "$run/checkpoints/.step_00000004.h5.tmp" ] || fail "killed: the stale temporary was not removed"
[ "$(cat "$run/checkpoints/latest")" = "step_00000006.h5" ] || fail "killed: the resumed run did not publish step 6"
echo "ok: SIGKILL during the save of step 4 left step 2 published; the resumed run finished at step 6"
