#!/usr/bin/env bash
# Several nodes under a real Slurm (label slurm): four nodes node1..node4 emulated on this host
# (one slurmd each; tests/slurm/local_cluster.bash), 2 ranks per node, the tiny LLaMA-shaped
# model on the demo corpus with tp 2 inside each node and dp across nodes. Then
#   1. slurm/scaling_study.sh, strong scaling at 1, 2, 3 and 4 nodes (serial, WAIT=1), the
#      3-node point submitted although the check refuses it (CHECK=warn: its global batch of 16
#      does not split over dp 3), so that it fails at run time: the 1, 2 and 4-node points train
#      the same losses step by step (to 1e-4: the dp all-reduce order differs), the report has the planner's columns next to the measured
#      ones, and the 3-node point is listed as failed with the trainer's error; each run measured
#      the host's peak once and shared it among its ranks; the MFU column is below 100% and within
#      20% of (achieved FLOP/s per rank x ranks on this host) / this host's peak measured on its own
#      (`strata info --peak`, before and after the study; when other work runs on the host, seen
#      as over 20% of the CPUs busy while the test idles or the two probes differing by over 10%,
#      that comparison is reported, not asserted);
#   2. preemption across 2 nodes: the 2-node point again, sent the warning signal (SIGUSR1) at
#      step 10, saves, requeues itself and resumes: its losses are the uninterrupted point's;
#   3. a rank on node 2 fails (STRATA_INJECT_FAILURE of the test-only binary strata-faults):
#      the job ends, with the rank's error and srun naming node2, instead of hanging.
# Timing figures of such a study mean nothing (every node shares the same 2 cores); the points
# run one after another and the test checks correctness and the tooling, not speed.
# usage: multinode.sh STRATA_BINARY SOURCE_DIR FAULTS_BINARY
set -uo pipefail
strata="$1"; src="$2"; faults="$3"
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok   $* ($(elapsed))"; }

# shellcheck source=tests/slurm/local_cluster.bash
source "$src/tests/slurm/local_cluster.bash"
slurm_local_require

tmp=$(mktemp -d /tmp/strata-slurm-multi.XXXXXX)
chmod 0755 "$tmp"  # munged runs as the munge user and keeps its socket below
cleanup() {
  slurm_local_stop
  if [ "$failures" -gt 0 ]; then
    echo "--- slurmctld/slurmd log tails ---"
    tail -n 15 "$tmp/slurm/log/"*.log 2>/dev/null
    echo "(kept $tmp)"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

bash "$src/scripts/prepare-demo-data.sh" "$strata" "$tmp/data" >"$tmp/prepare.log" 2>&1 ||
  { cat "$tmp/prepare.log"; fail "preparing the demo data"; exit 1; }
ok "demo data prepared"
# The host's peak, measured alone before any job runs and again after the study (the trainer's
# own probe, 1 s each).
host_peak() { "$strata" info --peak | sed -n 's/^  fp32 peak *\([0-9.]*\) GFLOP.*/\1/p'; }
# Share of the CPUs busy over 1 s while this test waits: other work on the host.
busy_share() {
  python3 - <<'PY'
import time
def ticks():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f), f[3] + f[4]  # total, idle + iowait
t0, i0 = ticks(); time.sleep(1); t1, i1 = ticks()
print("%.2f" % (1 - (i1 - i0) / max(1, t1 - t0)))
PY
}
busy_before=$(busy_share)
peak_before=$(host_peak)
[ -n "$peak_before" ] || { fail "strata info --peak printed no peak"; exit 1; }
ok "this host's fp32 peak: $peak_before GFLOP/s"
slurm_local_start "$tmp/slurm" 4 4 || { fail "local Slurm did not start"; exit 1; }

cd "$src"
export STRATA="$strata" RUNS="$tmp/runs" OPENBLAS_NUM_THREADS=1
steps=60
# Every job of this test: tp 2 inside a node, pp 1, the demo corpus.
common="parallel.tp=2 parallel.pp=1 data.datasets=[$tmp/data/kjv.h5,$tmp/data/fortunes.h5]"

# Loss of every step of a run (the last record of each step), one per line: "step loss".
losses() {
  python3 - "$1" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "step_ms" in r: rows[r["step"]] = r["loss"]
for s in sorted(rows): print(s, "%.6f" % rows[s])
PY
}

# ---- 1. the study: 1, 2, 3, 4 nodes; the 3-node point fails ------------------------------------
STUDIES="$tmp/studies" STUDY=tiny WAIT=1 NODES_LIST="1 2 3 4" GPUS_PER_NODE=2 SCRIPT=slurm/pretrain_tiny.sh \
  STEPS=$steps MODE=strong CHECK=warn CLUSTER=local SET="$common" \
  timeout 300 bash slurm/scaling_study.sh >"$tmp/study.log" 2>&1
rc=$?
cat "$tmp/study.log"
study="$tmp/studies/tiny"
run_of() { sed -n "s/.*\"point\": \"tiny-$1\".*\"run_dir\": \"\([^\"]*\)\".*/\1/p" "$study/study.jsonl" | tail -n 1; }
if [ $rc -ne 1 ]; then fail "study: exit status $rc, want 1 (a point failed)"
elif ! grep -q "refused: batch: parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (4 x 3 = 12)" \
    "$study/points/tiny-n3r6.plan.txt"; then fail "study: the check did not refuse the 3-node point"
else
  peak_after=$(host_peak)
  busy_after=$(busy_share)
  python3 - "$study/scaling.csv" "$study/study.jsonl" "$peak_before" "$peak_after" "$busy_before" "$busy_after" \
    <<'PY' >"$tmp/csv_check.log" 2>&1
import csv, json, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
logs = {}
for line in open(sys.argv[2]):
    j = json.loads(line)
    if j.get("status") == "submitted": logs[j["point"]] = j["log"]
before, after = float(sys.argv[3]) / 1e3, float(sys.argv[4]) / 1e3
busy = max(float(sys.argv[5]), float(sys.argv[6]))
# The 20% check against the host's peak needs a host that no other work disturbs (CI's, where
# the slurm tests run alone): under 20% of the CPUs busy while the test idles, before and after
# the study, and two isolated probes that agree within 10%.
quiet = busy < 0.2 and abs(before - after) <= 0.1 * max(before, after)
host = (before + after) / 2
assert [r["nodes"] for r in rows] == ["1", "2", "4"], [r["nodes"] for r in rows]
assert [r["ranks"] for r in rows] == ["2", "4", "8"], rows
assert [r["layout"] for r in rows] == ["tp2-pp1-dp1", "tp2-pp1-dp2", "tp2-pp1-dp4"], rows
assert all(r["global_batch"] == "16" and r["tag"] == "tiny" for r in rows), rows
for r in rows:
    ranks = int(r["ranks"])
    # Planner columns, filled.
    for k in ("pred_step_ms", "pred_tokens_per_s", "pred_mfu", "pred_comm_share", "pred_efficiency", "comm_share"):
        assert r[k] != "" and float(r[k]) >= 0, (k, r)
    assert abs(float(r["efficiency"]) - float(r["speedup"]) / (ranks / 2)) < 1e-3, r
    # The run measured the host's peak once and shared it among all its ranks on this host.
    log = open(logs["tiny-n%sr%d" % (r["nodes"], ranks)]).read()
    m = re.search(r"peak ([0-9.]+) GFLOP/s per rank \(fp32 FMA peak of this host measured by rank 0 on \d+ of \d+ "
                  r"cores \(([0-9.]+) GFLOP/s\), shared by the (\d+) ranks on the host\)", log)
    assert m, "no peak line in the log of " + r["run"]
    per_rank, probe, sharing = float(m.group(1)) / 1e3, float(m.group(2)) / 1e3, int(m.group(3))
    assert sharing == ranks and abs(per_rank * ranks - probe) <= 1e-3 * probe, (m.group(0), r)
    # MFU: below 100%; the time-weighted MFU is the achieved FLOP/s over that peak.
    assert r["mfu"] != "", ("run %s reported no MFU: the trainer stops reporting it once a step exceeds the peak it "
                            "measured at start, which other work on the host can make too low" % r["run"], r)
    mfu, tflops = float(r["mfu"]), float(r["tflops_per_rank"])
    assert 0 < mfu < 1, r
    assert abs(mfu - tflops / per_rank) <= 0.01 * mfu, (mfu, tflops / per_rank, r)
    want = tflops * ranks / host
    print("%s nodes: MFU %.2f%%, achieved FLOP/s of the host's %d ranks / the host's peak %.2f%%; predicted MFU %.2f%%;"
          " the run's probe %.1f GFLOP/s, the isolated probes %.1f and %.1f" %
          (r["nodes"], 100 * mfu, ranks, 100 * want, 100 * float(r["pred_mfu"]), probe * 1e3, before * 1e3, after * 1e3))
    if quiet:
        assert abs(mfu - want) <= 0.2 * want, ("MFU %.4f vs achieved / host peak %.4f" % (mfu, want), r)
if not quiet:
    print("NOTE: the host is busy with other work (%.0f%% of the CPUs busy while idle; isolated peak probes %.1f and "
          "%.1f GFLOP/s): MFU against the host's peak is not checked to 20%% here" % (100 * busy, before * 1e3, after * 1e3))
PY
  csv_rc=$?
  cat "$tmp/csv_check.log"
  l1=$(losses "$(run_of n1r2)/metrics.jsonl"); l2=$(losses "$(run_of n2r4)/metrics.jsonl")
  l4=$(losses "$(run_of n4r8)/metrics.jsonl")
  # The same losses at every node count: every step, to 1e-4 (seen: up to 1e-5 after 100 steps;
  # not bitwise, since the data-parallel all-reduce adds the gradients in another order at each dp).
  loss_diff=$(python3 - <(echo "$l1") <(echo "$l2") <(echo "$l4") $steps <<'PY'
import sys
runs = [dict(l.split() for l in open(f)) for f in sys.argv[1:4]]
steps = int(sys.argv[4])
if any(sorted(map(int, r)) != list(range(1, steps + 1)) for r in runs): print("steps"); sys.exit()
print("%.2g" % max(abs(float(r[s]) - float(runs[0][s])) for r in runs[1:] for s in runs[0]))
PY
)
  if [ $csv_rc -ne 0 ]; then fail "study: scaling.csv (above)"
  elif [ "$loss_diff" = steps ] || ! python3 -c "import sys; sys.exit(0 if float('$loss_diff') <= 1e-4 else 1)"; then
    diff <(echo "$l1") <(echo "$l4") | head -5
    fail "study: the losses differ between node counts by $loss_diff (or not $steps steps each)"
  elif ! grep -q "pred. step (ms)" "$study/scaling.md" || ! grep -q "pred. efficiency" "$study/scaling.md"; then
    fail "study: scaling.md has no planner columns"
  elif ! grep -q "^| tiny-n3r6 *| 3 *| 6 *| failed *|.*global_batch_size (16) must be a multiple" "$study/scaling.md"; then
    fail "study: the failed 3-node point is not listed with its error"
  elif grep -q "^| tiny-n3r6-" "$study/scaling.md"; then fail "study: the failed point is in the table"
  elif [ "$(head -c 8 "$study/scaling.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then
    fail "study: scaling.png is not a PNG"
  elif ! grep -q "using 3:21 with linespoints" "$study/scaling.gp"; then fail "study: no predicted curve in the plot"
  elif grep -q "lacks support for cpu binding" "$study"/logs/*.out; then fail "study: srun warned about CPU binding"
  else ok "study: 1, 2, 4 nodes reported with predictions, the same $steps losses (to $loss_diff; last $(tail -n 1 <<<"$l1")), 3-node point failed and listed"
  fi
fi

# ---- 2. preemption across 2 nodes resumes exactly ----------------------------------------------
# The study's 2-node point again (its settings from the study), stopped at step 10 by the warning.
SET="$common parallel.dp=0 train.steps=$steps ckpt.interval=0 ckpt.save_at_end=false" timeout 240 \
  sbatch --wait --parsable --nodes=2 --ntasks-per-node=2 --job-name=preempt --output="$tmp/logs-%x-%j.out" \
  slurm/pretrain_tiny.sh >"$tmp/preempt.id" &
wait_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/preempt.id" ] && break; sleep 0.1; done
idp=$(head -n 1 "$tmp/preempt.id")
logp="$tmp/logs-preempt-$idp.out" runp="$tmp/runs/preempt-$idp"
for _ in $(seq 1 1200); do
  grep -q '"step": 10,' "$runp/metrics.jsonl" 2>/dev/null && break
  sleep 0.05
done
scancel --batch --signal=USR1 "$idp" || fail "preemption: scancel --signal=USR1 failed"
wait "$wait_pid"
rc=$?
grep -v '^  ' "$logp" | grep -E 'strata-slurm|stopped at|resumed|error' | head -20
stopped=$(sed -n 's/^strata: stopped at step \([0-9]*\) on signal SIGUSR1.*/\1/p' "$logp" | head -n 1)
lp=$(losses "$runp/metrics.jsonl" 2>/dev/null)
if [ $rc -ne 0 ]; then fail "preemption: sbatch --wait exit status $rc"
elif ! grep -q "requeueing job $idp (restart 1)" "$logp"; then fail "preemption: not requeued"
elif [ -z "$stopped" ] || [ "$stopped" -ge $steps ]; then fail "preemption: did not stop before the end (stopped at '$stopped')"
elif ! grep -q "job $idp (preempt) restart 1: 2 nodes x 2 ranks = 4 ranks on node\[1-2\]" "$logp"; then
  fail "preemption: the requeued job did not run on 2 nodes"
elif ! grep -q "resumed from .*step_0*$stopped.h5: step $stopped" "$logp"; then fail "preemption: no resume from step $stopped"
elif [ "$lp" != "$l2" ]; then
  diff <(echo "$l2") <(echo "$lp") | head -5
  fail "preemption: the losses after the requeue differ from the uninterrupted 2-node run's"
else ok "preemption: stopped at step $stopped on 2 nodes, requeued, resumed; all $steps losses equal the uninterrupted run's"
fi

# ---- 3. a failing rank on node 2 ends the job --------------------------------------------------
t0=$(date +%s)
STRATA="$faults" STRATA_INJECT_FAILURE="rank=3,step=3" SET="$common train.steps=$steps ckpt.save_at_end=false" timeout 120 \
  sbatch --wait --parsable --nodes=2 --ntasks-per-node=2 --job-name=failing --output="$tmp/logs-%x-%j.out" \
  slurm/pretrain_tiny.sh >"$tmp/failing.id"
rc=$?
took=$(( $(date +%s) - t0 ))
idf=$(head -n 1 "$tmp/failing.id")
logf="$tmp/logs-failing-$idf.out"
grep -E 'error|step ended' "$logf" | head -6
if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then fail "failing rank: sbatch --wait exit status $rc (want the job's failure)"
elif ! grep -q "strata: error (rank 3 of 4): .* injected failure at step 3" "$logf"; then fail "failing rank: no error from rank 3"
elif ! grep -q "srun: error: node2: tasks\? \([0-9]*-\)\?3: " "$logf"; then fail "failing rank: srun did not name node2, task 3"
elif ! grep -q '"exit_code": [1-9]' "$tmp/runs/failing-$idf/job.json"; then fail "failing rank: job.json has no failing exit code"
else ok "failing rank: rank 3 on node2 failed at step 3; the job ended in $took s"
fi

echo "slurm multinode test: $failures failure(s) in $(elapsed)"
[ "$failures" -eq 0 ]
