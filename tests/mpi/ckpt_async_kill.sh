#!/usr/bin/env bash
# Killed during a background checkpoint write (docs/checkpoints.md, "Asynchronous saves"), on 2
# ranks (dp2, ZeRO-1) training on an HDF5 dataset (so the loader thread reads HDF5 while the
# writer thread writes it): a job saving every step, its writer slowed by STRATA_TEST_SAVE_PAUSE
# of the test-only binary strata-faults (every save pauses halfway through its tensors), is
# killed with SIGKILL while a save is being written (its .tmp file exists), again and again,
# each job resuming with train.resume=auto from what the last one left. After every kill
# `latest` names a checkpoint, `strata ckpt verify` finds every published checkpoint intact, and
# nothing half-written was published; once at least 10 kills landed during a write, a last job
# finishes the run, whose final checkpoint then holds bit for bit the tensors of an
# uninterrupted run and whose metrics hold the same losses for every step.
# usage: ckpt_async_kill.sh STRATA_BINARY SOURCE_DIR FAULTS_BINARY
set -uo pipefail
strata="$1"; src="$2"; faults="$3"
tmp=$(mktemp -d); trap 'pkill -KILL -P $$ 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; grep -v "^  " "$f" | tail -n 6; done; exit 1; }
steps=40
"$strata" prepare --input /usr/share/common-licenses/GPL-3 --tokenizer bytes --output "$tmp/gpl.h5" >"$tmp/prepare.log" 2>&1 \
  || fail "prepare"
train() {  # train OUT_DIR LOG [--set ...]: 2 ranks of $bin (default: strata) in the background; sets $job
  local out="$1" log="$2"; shift 2
  mpiexec -n 2 --oversubscribe "${bin:-$strata}" train --config "$src/configs/test_tiny.yaml" --set model.vocab_size=260 \
    --set data.source=hdf5 --set "data.datasets=[$tmp/gpl.h5]" --set data.prefetch=1 --set parallel.dp=2 \
    --set parallel.zero_stage=1 --set parallel.micro_batch_size=4 --set parallel.global_batch_size=8 \
    --set train.steps=$steps --set ckpt.interval=1 --set ckpt.keep=3 --set train.resume=auto --set eval.windows=0 \
    --set hardware.peak_tflops=1 --set train.log_interval=1000 --set "train.out_dir=$out" "$@" >"$log" 2>&1 &
  job=$!
}
kill_job() { pkill -KILL -P "$job" 2>/dev/null; kill -KILL "$job" 2>/dev/null; wait "$job" 2>/dev/null; }
writing() { compgen -G "$1/checkpoints/.step_*.h5.tmp" >/dev/null; }
latest_step() { sed -n 's/^step_0*\([0-9][0-9]*\)\.h5$/\1/p' "$1/checkpoints/latest" 2>/dev/null; }

# The uninterrupted run (background saves, no pause).
train "$tmp/whole" "$tmp/whole.log"
wait "$job" || fail "the uninterrupted run failed"

run="$tmp/killed"
kills=0; tries=0
while [ $kills -lt 10 ]; do
  tries=$((tries + 1)); [ $tries -le 30 ] || fail "only $kills of $tries kills landed during a background write"
  before=$(latest_step "$run"); before=${before:-0}
  [ "$before" -lt $((steps - 2)) ] || fail "the killed jobs reached step $before before 10 kills: raise steps"
  touch "$tmp/start"
  bin="$faults" STRATA_TEST_SAVE_PAUSE="step=*,seconds=0.4" train "$run" "$tmp/killed.$tries.log"
  # Wait until this job has published a checkpoint (so every job moves the run on) and is
  # writing the next one in the background, then kill at a random moment of that write.
  limit=$(( $(date +%s) + 60 ))
  until [ -n "$(find "$run/checkpoints" -name latest -newer "$tmp/start" 2>/dev/null)" ] &&
        [ -n "$(find "$run/checkpoints" -name '.step_*.h5.tmp' -newer "$run/checkpoints/latest" 2>/dev/null)" ]; do
    kill -0 "$job" 2>/dev/null || fail "job $tries ended before writing two checkpoints"
    [ "$(date +%s)" -lt $limit ] || fail "job $tries did not publish a checkpoint and start the next within 60 s"
    sleep 0.05
  done
  sleep "0.$(( RANDOM % 30 ))"
  during=0; writing "$run" && during=1
  kill_job
  [ $during -eq 1 ] && kills=$((kills + 1))
  # What the kill left: a published, intact `latest`; nothing half-written under a step name.
  after=$(latest_step "$run")
  [ -n "$after" ] || fail "kill $tries: no latest checkpoint"
  [ "$after" -ge "$before" ] || fail "kill $tries: latest went back from step $before to $after"
  "$strata" ckpt verify "$run/checkpoints" >"$tmp/verify.$tries.out" 2>&1 \
    || { cat "$tmp/verify.$tries.out"; fail "kill $tries: a published checkpoint is damaged"; }
  grep -q "^  ok  *$(printf 'step_%08d.h5' "$after")" "$tmp/verify.$tries.out" \
    || { cat "$tmp/verify.$tries.out"; fail "kill $tries: latest (step $after) was not verified"; }
  echo "kill $tries ($([ $during -eq 1 ] && echo during || echo outside) a background write): latest step $before -> $after, every published checkpoint intact"
done

# The last job finishes the run without pauses.
train "$run" "$tmp/killed.final.log"
wait "$job" || fail "the resumed run failed"
grep -q "resumed from $run/checkpoints/step_" "$tmp/killed.final.log" || fail "the last job did not resume"
last=$(printf "step_%08d.h5" $steps)
checksums() { "$strata" ckpt inspect "$1" --json --no-verify | python3 -c "
import json, sys
j = json.load(sys.stdin)
print(j['step'], j['consumed_samples'], *[t['checksum'] for t in j['tensors']])"; }
[ "$(checksums "$run/checkpoints/$last")" = "$(checksums "$tmp/whole/checkpoints/$last")" ] \
  || fail "the final checkpoint after $kills kills differs from the uninterrupted run's"
python3 - "$run/metrics.jsonl" "$tmp/whole/metrics.jsonl" $steps <<'EOF' || fail "the losses differ"
import json, sys
def losses(path):
    return [(j['step'], j['loss']) for j in map(json.loads, open(path)) if 'loss' in j]
a, b, n = losses(sys.argv[1]), losses(sys.argv[2]), int(sys.argv[3])
assert [s for s, _ in a] == list(range(1, n + 1)), f"steps {[s for s, _ in a]}"
assert a == b, f"{a} != {b}"
EOF
echo "ok: $kills kills during background writes (of $tries); every time latest was intact; the resumed run ends bit for bit as the uninterrupted one"
