#!/usr/bin/env bash
# `strata eval --per-document`: the score of every document of a dataset under a tiny byte-level
# model trained here for a few seconds equals a direct computation — the decoder's next-token
# logits (`eval --logits`, another code path) over the document after its dataset's EOS, chunk
# by chunk of train.seq_len tokens, turned into the mean -log p in Python; 2 data-parallel ranks
# and tp 2 give the same scores; the file is read back by the curriculum (data.curriculum:
# scores) and an easy-to-hard run with it trains; bad uses are one-line errors.
# usage: eval_per_document.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.bash"
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# Training data: the GPL and Apache licences, one document per paragraph, byte tokens.
out=$(timeout 120 "$strata" prepare --input /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
      --format text --doc-split blank-line --tokenizer bytes --no-filter --no-dedup --output "$tmp/lic.h5" 2>&1) \
  || { echo "FAIL prepare: $out"; exit 1; }
# The documents to score: short, medium, and one longer than two contexts (T = 32).
python3 - "$tmp/docs.jsonl" <<'PY'
import json, sys
docs = ["Hi.", "The licence is free software.", "Copyright (C) 2007 Free Software Foundation, Inc.",
        "You may convey verbatim copies of the Program's source code as you receive it, in any medium, "
        "provided that you conspicuously publish on each copy an appropriate copyright notice.", "x"]
with open(sys.argv[1], "w") as f:
    for d in docs:
        f.write(json.dumps({"text": d}) + "\n")
PY
out=$(timeout 60 "$strata" prepare --input "$tmp/docs.jsonl" --tokenizer bytes --no-filter --no-dedup \
      --output "$tmp/docs.h5" 2>&1) || { echo "FAIL prepare docs: $out"; exit 1; }
cat >"$tmp/run.yaml" <<YAML
model: {name: perdoc_tiny, num_layers: 2, d_model: 32, num_heads: 4, num_kv_heads: 2, vocab_size: 257,
        max_seq_len: 64, norm: rmsnorm, mlp: swiglu, positions: rope, tied_embeddings: false, bias: false}
parallel: {micro_batch_size: 8}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 5}
train: {steps: 60, seq_len: 32, seed: 3, out_dir: $tmp/run, log_interval: 20}
data: {source: hdf5, datasets: [{path: $tmp/lic.h5}], tokenizer: bytes, valid_fraction: 0.05}
hardware: {threads: 1}
YAML
out=$(timeout 120 "$strata" train --config "$tmp/run.yaml" 2>&1) || { echo "FAIL train: $out"; exit 1; }
ckpt="$tmp/run/checkpoints"

json=$(timeout 60 "$strata" eval --ckpt "$ckpt" --data "$tmp/docs.h5" "$tmp/lic.h5" \
       --per-document "$tmp/docs.scores" "$tmp/lic.scores" --batch 3 --json 2>&1 | tail -1)
python3 - "$json" "$tmp/docs.scores" "$tmp/lic.scores" <<'PY' || fail "eval --per-document: $json"
import json, math, sys
r = json.loads(sys.argv[1])["per_document"]
assert [p["documents"] for p in r] == [5, 155], r
for p, path in zip(r, sys.argv[2:]):
    scores = [float(l) for l in open(path) if not l.startswith("#")]
    assert len(scores) == p["documents"] and all(math.isfinite(s) and s > 0 for s in scores), path
print(f"ok   eval --per-document: {r[0]['documents']} + {r[1]['documents']} documents scored, one line each")
PY

# The direct computation: for each document, [EOS] + its tokens (which end in EOS), cut into
# chunks of 32 targets, each chunk's inputs through the decoder (`eval --logits`).
python3 - "$tmp/docs.jsonl" > "$tmp/chunks.txt" <<'PY'
import json, sys
T, EOS = 32, 256
for d, line in enumerate(open(sys.argv[1])):
    seq = [EOS] + list(json.loads(line)["text"].encode()) + [EOS]
    for k in range(0, len(seq) - 1, T):
        n = min(T, len(seq) - 1 - k)
        print(d, ",".join(map(str, seq[k:k + n])), ",".join(map(str, seq[k + 1:k + n + 1])))
PY
: >"$tmp/direct.jsonl"
while read -r d inputs targets; do
  logits=$(timeout 60 "$strata" eval --ckpt "$ckpt" --logits "$inputs" 2>/dev/null | tail -1)
  echo "{\"doc\": $d, \"targets\": [$targets], \"out\": $logits}" >>"$tmp/direct.jsonl"
done <"$tmp/chunks.txt"
python3 - "$tmp/direct.jsonl" "$tmp/docs.scores" <<'PY' || fail "per-document scores differ from the decoder's"
import json, math, sys
sums, counts = {}, {}
for r in map(json.loads, open(sys.argv[1])):
    for row, t in zip(r["out"]["logits"], r["targets"]):
        m = max(row)
        nll = -(row[t] - m - math.log(sum(math.exp(x - m) for x in row)))
        sums[r["doc"]] = sums.get(r["doc"], 0) + nll
        counts[r["doc"]] = counts.get(r["doc"], 0) + 1
direct = [sums[d] / counts[d] for d in sorted(sums)]
scores = [float(l) for l in open(sys.argv[2]) if not l.startswith("#")]
worst = max(abs(a - b) / b for a, b in zip(scores, direct))
assert len(direct) == len(scores) == 5 and worst < 1e-4, (scores, direct)
print(f"ok   per-document scores = the decoder's mean -log p per document (chunks of 32; max relative "
      f"difference {worst:.1e}; {counts[3]} tokens in the longest)")
PY

# Data-parallel (2 ranks, documents split) and tensor-parallel (tp 2): the same scores.
for layout in "dp2 --tp 1" "tp2 --tp 2"; do
  out=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" eval --ckpt "$ckpt" --data "$tmp/lic.h5" ${layout#* } \
        --per-document "$tmp/${layout%% *}.scores" 2>&1) || fail "eval --per-document on 2 ranks (${layout#* }): $out"
done
python3 - "$tmp/lic.scores" "$tmp/dp2.scores" "$tmp/tp2.scores" <<'PY' || fail "per-document scores on 2 ranks differ"
import sys
load = lambda p: [float(l) for l in open(p) if not l.startswith("#")]
one, dp2, tp2 = map(load, sys.argv[1:])
worst = max(max(abs(a - b) for a, b in zip(one, o)) for o in (dp2, tp2))
assert len(one) == len(dp2) == len(tp2) == 155 and worst < 1e-5, worst
print(f"ok   dp 2 and tp 2 give the scores of one rank (max difference {worst:.1e})")
PY

# Read back by the curriculum: easy-to-hard by these scores, and the run trains.
out=$(timeout 120 "$strata" train --config "$tmp/run.yaml" --set train.out_dir="$tmp/cur" --set train.steps=40 \
      --set data.curriculum=scores --set "data.curriculum_scores=[$tmp/lic.scores]" \
      --set data.curriculum_tokens=10000 --set train.log_interval=10 2>&1)
if [ $? -ne 0 ]; then
  fail "curriculum run: $out"
elif ! grep -q "curriculum: windows from easy to hard by scores" <<<"$out"; then
  fail "the curriculum run does not say it orders by the scores: $out"
else
  python3 - "$tmp/cur/metrics.jsonl" <<'PY' || fail "the curriculum run's loss does not fall"
import json, sys
losses = [r["loss"] for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
assert len(losses) == 40 and losses[-1] < losses[0] - 0.5, (losses[0], losses[-1])
print(f"ok   curriculum by the scores trains: loss {losses[0]:.3f} -> {losses[-1]:.3f} in 40 steps")
PY
fi
# A score file with a line per document of another dataset is refused by the curriculum.
expect_error "curriculum: scores of another dataset" "5 scores for the 155 documents" \
  train --config "$tmp/run.yaml" --set train.out_dir="$tmp/bad" --set data.curriculum=scores \
  --set "data.curriculum_scores=[$tmp/docs.scores]" --set data.curriculum_tokens=10000

expect_error "per-document without --data" "--per-document needs the datasets" \
  eval --ckpt "$ckpt" --per-document "$tmp/x.scores"
expect_error "per-document: one file per dataset" "one output file per --data file" \
  eval --ckpt "$ckpt" --data "$tmp/docs.h5" "$tmp/lic.h5" --per-document "$tmp/x.scores"
expect_error "per-document with --windows" "--windows does not apply" \
  eval --ckpt "$ckpt" --data "$tmp/docs.h5" --per-document "$tmp/x.scores" --windows 3

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all per-document checks passed"
