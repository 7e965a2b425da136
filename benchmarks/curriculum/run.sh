#!/usr/bin/env bash
# The curriculum experiment: the same model and token budget (base.yaml: 400 steps x 1,024
# tokens on the demo corpus, KJV 0.6 + fortunes 0.4) trained three ways, with the validation
# loss every 25 steps on the same 128 held-out windows of both datasets:
#   a  no curriculum                 the fixed blend, random windows
#   b  easy to hard                  data.curriculum: length (short documents first), root pacing
#                                    from 10 % of the windows to all of them over 60 % of the tokens
#   c  staged mixture                data.schedule: fortunes-heavy (0.4 : 0.6) for the first half,
#                                    then a ramp to KJV-heavy (0.9 : 0.1) by 75 %, held to the end
#   d  easy to hard by a reference   data.curriculum: scores, the pacing of b; the scores are each
#      model's loss                  document's mean loss under a reference model (base.yaml, seed
#                                    11, 300 steps on the same blend): strata eval --per-document
# and resume of b and c across a DP-size change: 200 steps on 1 rank (checkpoint), then the
# last 200 on 2 ranks, compared with the uninterrupted run.
#   benchmarks/curriculum/run.sh STRATA_BINARY OUT_DIR
# Writes OUT_DIR/{a,b,c,d}/metrics.jsonl, OUT_DIR/ref (the reference model and its scores), the resume checks, and benchmarks/results/curriculum.txt
# (a table of the validation curves) plus curriculum.png when gnuplot is installed.
set -euo pipefail
strata=$(realpath "$1"); out=$(mkdir -p "$2" && cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
[ -f "$out/data/kjv.h5" ] || bash "$root/scripts/prepare-demo-data.sh" "$strata" "$out/data" >"$out/prepare.log"
cd "$out"
data=(--set "data.datasets=[{path: $out/data/kjv.h5, weight: 0.6}, {path: $out/data/fortunes.h5, weight: 0.4}]")
tokens=409600
curriculum=(--set data.curriculum=length --set data.curriculum_pacing=root --set data.curriculum_start=0.1
            --set data.curriculum_tokens=$((tokens * 6 / 10)))
schedule=(--set "data.schedule=[{tokens: 0, weights: [0.4, 0.6]}, {tokens: $((tokens / 2)), weights: [0.4, 0.6]},
                                {tokens: $((tokens * 3 / 4)), weights: [0.9, 0.1]}]")
declare -A extra=([a]="" [b]="curriculum" [c]="schedule" [d]="reference")
run() {  # name ranks [args...]
  local name=$1 ranks=$2; shift 2
  rm -rf "$out/$name"
  mpiexec -n "$ranks" "$strata" train --config "$here/base.yaml" "${data[@]}" --set train.out_dir="$out/$name" "$@" \
    >"$out/$name.log" 2>&1 || { tail -20 "$out/$name.log"; exit 1; }
}
# d's reference: the same model, another seed, 300 steps; its per-document losses, scored on 2
# data-parallel ranks.
echo "reference model and its per-document scores" >&2
run ref 1 --set train.seed=11 --set train.steps=300 --set optim.decay_steps=300 --set ckpt.save_at_end=true
mpiexec -n 2 "$strata" eval --ckpt "$out/ref/checkpoints" --data "$out/data/kjv.h5" "$out/data/fortunes.h5" \
  --per-document "$out/ref/kjv.scores" "$out/ref/fortunes.scores" >"$out/ref/scores.log" 2>&1 \
  || { tail -20 "$out/ref/scores.log"; exit 1; }
grep "per-document scores" "$out/ref/scores.log" >&2
reference=(--set data.curriculum=scores --set "data.curriculum_scores=[$out/ref/kjv.scores, $out/ref/fortunes.scores]"
           --set data.curriculum_pacing=root --set data.curriculum_start=0.1 --set data.curriculum_tokens=$((tokens * 6 / 10)))
for name in a b c d; do
  args=()
  [ "${extra[$name]}" = curriculum ] && args=("${curriculum[@]}")
  [ "${extra[$name]}" = schedule ] && args=("${schedule[@]}")
  [ "${extra[$name]}" = reference ] && args=("${reference[@]}")
  echo "run $name" >&2
  run "$name" 1 "${args[@]}"
  if [ "$name" = b ] || [ "$name" = c ]; then
    # Resume across a DP-size change: 200 steps on 1 rank (checkpoint), the last 200 on 2 ranks,
    # against the uninterrupted 1-rank run. The sample stream is the same by construction (the
    # unit tests compare it sample by sample); the losses differ only by the fp32 summation
    # order of the 2-rank gradient all-reduce.
    run "$name-half" 1 "${args[@]}" --set train.steps=200 --set ckpt.save_at_end=true --set optim.decay_steps=400
    run "$name-resumed" 2 "${args[@]}" --set train.resume="$out/$name-half/checkpoints"
    python3 - "$out/$name/metrics.jsonl" "$out/$name-half/metrics.jsonl" "$out/$name-resumed/metrics.jsonl" "$name" <<'PY'
import json, sys
def losses(p, key="loss"):
    return {r["step"]: r[key] for r in map(json.loads, open(p)) if key in r}
full, half, resumed = losses(sys.argv[1]), losses(sys.argv[2]), losses(sys.argv[3])
assert all(half[s] == full[s] for s in half), "the first 200 steps differ from the uninterrupted run"
steps = sorted(s for s in resumed if s > 200)
worst = max(abs(resumed[s] - full[s]) / abs(full[s]) for s in steps)
vf, vr = losses(sys.argv[1], "valid_loss"), losses(sys.argv[3], "valid_loss")
vworst = max(abs(vr[s] - vf[s]) for s in vr if s > 200)
print(f"{sys.argv[4]}: steps 1-200 bitwise equal to the uninterrupted run; resumed on 2 ranks for steps 201-400: "
      f"max relative training-loss difference {worst:.1e}, max validation-loss difference {vworst:.1e}")
assert len(steps) == 200 and worst < 2e-2, "the resumed run departs from the uninterrupted one"
PY
  fi
done | tee "$out/resume.txt"
python3 - "$out" "$root/benchmarks/results/curriculum.txt" <<'PY'
import json, sys
out, dest = sys.argv[1], sys.argv[2]
curves = {}
for n in "abcd":
    curves[n] = {r["step"]: r["valid_loss"] for r in map(json.loads, open(f"{out}/{n}/metrics.jsonl")) if "valid_loss" in r}
steps = sorted(curves["a"])
with open(dest, "w") as f:
    f.write("# validation loss (nats/byte, 128 held-out windows of KJV + fortunes) by step; 1,024 tokens per step\n")
    f.write("# a: no curriculum   b: easy to hard (length, root pacing over 60 %)   c: staged mixture\n")
    f.write("# d: easy to hard by a reference model's per-document loss (strata eval --per-document), b's pacing\n")
    f.write("step a b c d\n")
    for s in steps:
        f.write(f"{s}" + "".join(f" {curves[n].get(s, float('nan')):.4f}" for n in "abcd") + "\n")
print(open(dest).read())
PY
cat "$out/resume.txt" >> "$root/benchmarks/results/curriculum.txt"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 720,420
set output "$root/docs/curriculum.png"
set xlabel "step (1,024 tokens each)"; set ylabel "validation loss (nats/byte)"; set key top right; set grid
plot "$root/benchmarks/results/curriculum.txt" using 1:2 with linespoints title "a: no curriculum", \
     "" using 1:3 with linespoints title "b: easy to hard (length)", \
     "" using 1:4 with linespoints title "c: staged mixture", \
     "" using 1:5 with linespoints title "d: easy to hard (reference-model loss)"
GP
fi
