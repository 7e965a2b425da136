#!/usr/bin/env bash
# `strata eval` and `strata generate` on a checkpoint of a tiny byte-level model trained here
# for a few seconds: perplexity and probe accuracy come out as numbers, generation is
# reproducible (greedy; sampling with a seed), the KV cache gives the same greedy text as
# re-running the whole sequence, tensor parallelism over 2 ranks gives the same text as one
# rank, and bad input is a one-line error (missing checkpoint, bad probe JSON naming the line,
# bad options, a TP size that is not the rank count); eval's validation loss equals the
# trainer's on the same held-out windows, for causal and masked LM.
# usage: eval_generate.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.bash"
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# Data: the GPL and Apache licences, one document per paragraph, byte tokens.
out=$(timeout 120 "$strata" prepare --input /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
      --format text --doc-split blank-line --tokenizer bytes --no-filter --no-dedup --output "$tmp/lic.h5" 2>&1) \
  || { echo "FAIL prepare: $out"; exit 1; }
cat >"$tmp/run.yaml" <<YAML
model: {name: eval_tiny, num_layers: 2, d_model: 32, num_heads: 4, num_kv_heads: 2, vocab_size: 257,
        max_seq_len: 64, norm: rmsnorm, mlp: swiglu, positions: rope, tied_embeddings: false, bias: false}
parallel: {micro_batch_size: 8}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 5}
train: {steps: 100, seq_len: 32, seed: 3, out_dir: $tmp/run, log_interval: 20}
data: {source: hdf5, datasets: [{path: $tmp/lic.h5}], tokenizer: bytes, valid_fraction: 0.05}
eval: {windows: 100000}
hardware: {threads: 1}
YAML
# Trained tensor-parallel over 2 ranks: everything below loads a checkpoint written in another
# layout (one rank), or in the same (mpirun -np 2).
out=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" train --config "$tmp/run.yaml" --set parallel.tp=2 2>&1) \
  || { echo "FAIL train: $out"; exit 1; }
ckpt="$tmp/run/checkpoints"
[ -f "$ckpt/latest" ] || { echo "FAIL train wrote no checkpoint in $ckpt"; exit 1; }

cat >"$tmp/probes.jsonl" <<'JSONL'
{"prompt": "GNU GENERAL PUBLIC", "answer": "LICENSE", "choices": ["LICENSE", "LIBRARY", "MEETING", "SERVICE"]}
{"prompt": "Apache License, Version", "answer": "2.0", "choices": ["2.0", "7.5", "9.1", "4.4"]}
JSONL
json=$(timeout 120 "$strata" eval --ckpt "$ckpt" --probes "$tmp/probes.jsonl" --json 2>&1 | tail -1)
python3 - "$json" <<'PY' || fail "eval json: $json"
import json, math, sys
r = json.loads(sys.argv[1])
ppl = r["validation"]["perplexity"]
assert math.isfinite(ppl) and 1 < ppl < 257, ppl                   # better than uniform over bytes
assert abs(math.exp(r["validation"]["loss"]) - ppl) < 1e-6 * ppl      # perplexity = exp(mean loss)
assert r["probes"]["total"] == 2 and 0 <= r["probes"]["correct"] <= 2
assert all(len(i["log_likelihood"]) == 4 and all(x < 0 for x in i["log_likelihood"]) for i in r["probes"]["items"])
print(f"ok   eval: perplexity {ppl:.2f}, probes {r['probes']['correct']}/2")
PY
# The same held-out windows as the trainer's final validation (all of them): the same loss.
same_as_trainer() {  # METRICS JSON
  python3 - "$1" "$2" <<'PY'
import json, sys
valid = [r for r in map(json.loads, open(sys.argv[1])) if "valid_loss" in r][-1]
mine = json.loads(sys.argv[2])["validation"]
assert mine["tokens"] == valid["valid_tokens"], (mine, valid)
assert abs(mine["loss"] - valid["valid_loss"]) < 1e-4, (mine, valid)
print(f"ok   eval's validation loss {mine['loss']:.5f} = the trainer's {valid['valid_loss']:.5f} on {mine['tokens']} tokens")
PY
}
same_as_trainer "$tmp/run/metrics.jsonl" "$json" || fail "eval and the trainer's validation differ"

json2=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" eval --ckpt "$ckpt" --probes "$tmp/probes.jsonl" --json 2>&1 | tail -1)
python3 - "$json" "$json2" <<'PY' || fail "eval on tp=2 differs from one rank: $json2"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert abs(a["validation"]["loss"] - b["validation"]["loss"]) < 1e-5, (a["validation"], b["validation"])
for x, y in zip(a["probes"]["items"], b["probes"]["items"]):
    assert all(abs(u - v) < 1e-3 for u, v in zip(x["log_likelihood"], y["log_likelihood"])), (x, y)
print("ok   eval on tp=2 = one rank")
PY
out=$(timeout 120 "$strata" eval --ckpt "$ckpt" --data "$tmp/lic.h5" --windows 10 2>&1)
grep -q "over 10 windows x 32 tokens" <<<"$out" && echo "ok   eval --data --windows 10" || fail "eval --data: $out"

gen() { timeout 120 "$strata" generate --ckpt "$ckpt" --prompt "This License" -n 30 "$@" 2>/dev/null; }
greedy=$(gen --greedy)
[ "$(gen --greedy)" = "$greedy" ] && [ -n "$greedy" ] || fail "greedy generation is not reproducible: $greedy"
[[ "$greedy" == "This License"* ]] || fail "output does not start with the prompt: $greedy"
[ "$(gen --greedy --no-cache)" = "$greedy" ] && echo "ok   greedy with the KV cache = without: $greedy" \
  || fail "greedy with and without the KV cache differ: '$greedy' vs '$(gen --greedy --no-cache)'"
s1=$(gen --temperature 0.9 --top-k 20 --top-p 0.95 --seed 5)
[ "$(gen --temperature 0.9 --top-k 20 --top-p 0.95 --seed 5)" = "$s1" ] && echo "ok   sampling with a seed is reproducible: $s1" \
  || fail "sampling with the same seed differs"
[ "$(gen --temperature 0.9 --top-k 20 --top-p 0.95 --seed 5 --no-cache)" = "$s1" ] \
  && echo "ok   sampling with the KV cache = without" || fail "sampling with and without the KV cache differ"
[ "$(gen --temperature 0.9 --top-k 20 --top-p 0.95 --seed 6)" != "$s1" ] || fail "another seed gives the same text"
tp2=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" generate --ckpt "$ckpt" --prompt "This License" -n 30 --greedy 2>/dev/null)
[ "$tp2" = "$greedy" ] && echo "ok   tp=2 greedy = one rank" || fail "tp=2 greedy '$tp2' != one rank '$greedy'"
tp2=$(timeout 120 mpirun --oversubscribe -np 2 "$strata" generate --ckpt "$ckpt" --prompt "This License" -n 30 \
      --temperature 0.9 --top-k 20 --top-p 0.95 --seed 5 2>/dev/null)
[ "$tp2" = "$s1" ] && echo "ok   tp=2 sampling = one rank" || fail "tp=2 sampling '$tp2' != one rank '$s1'"
stats=$(timeout 120 "$strata" generate --ckpt "$ckpt" --prompt "This License" -n 30 --greedy 2>&1 >/dev/null)
grep -q "tokens/s (KV cache, tp 1)" <<<"$stats" || fail "generate stats line: $stats"

printf '%s\n' '{"prompt": "a", "answer": "b", "choices": ["b", "c"]}' '{"prompt": "a", "answer": ' >"$tmp/bad.jsonl"
expect_error bad-probe-json "bad.jsonl:2: not valid JSON" eval --ckpt "$ckpt" --probes "$tmp/bad.jsonl"
printf '%s\n' '{"prompt": "a", "answer": "x", "choices": ["b", "c"]}' >"$tmp/noanswer.jsonl"
expect_error probe-answer-not-a-choice "noanswer.jsonl:1: the answer \"x\"" eval --ckpt "$ckpt" --probes "$tmp/noanswer.jsonl"
expect_error missing-checkpoint "$tmp/no_such_ckpt" eval --ckpt "$tmp/no_such_ckpt"
expect_error missing-checkpoint-generate "$tmp/no_such_ckpt" generate --ckpt "$tmp/no_such_ckpt" --prompt x
expect_error bad-top-p "--top-p" generate --ckpt "$ckpt" --prompt x --top-p 0
expect_error tp-not-rank-count "--tp 2 needs exactly 2 ranks" generate --ckpt "$ckpt" --prompt x --tp 2
"$strata" tokenizer train --input /usr/share/common-licenses/Apache-2.0 --vocab-size 280 --output "$tmp/other.json" >/dev/null 2>&1
expect_error other-tokenizer "is not the one" generate --ckpt "$ckpt" --prompt x --tokenizer "$tmp/other.json"
expect_error long-prompt "leaves no room" generate --ckpt "$ckpt" --prompt "$(printf 'x%.0s' {1..80})"

# Masked LM (bidirectional, [MASK] = 257 for byte-level HDF5 data): perplexity over the masked
# positions of the same corrupted held-out windows as the trainer's validation; probes scored by
# filling [MASK] tokens; generation refused.
out=$(timeout 120 "$strata" train --config "$tmp/run.yaml" --set train.objective=masked_lm --set model.attention=bidirectional \
      --set model.vocab_size=258 --set train.steps=30 --set "train.out_dir=$tmp/mlm" 2>&1) || { echo "FAIL train mlm: $out"; exit 1; }
json=$(timeout 120 "$strata" eval --ckpt "$tmp/mlm/checkpoints" --probes "$tmp/probes.jsonl" --json 2>&1)
grep -q "masked LM, \[MASK\] = 257" <<<"$json" || fail "eval names no [MASK] id: $json"
json=$(tail -1 <<<"$json")
same_as_trainer "$tmp/mlm/metrics.jsonl" "$json" || fail "masked-LM eval and the trainer's validation differ"
python3 - "$json" <<'PY' || fail "masked-LM probes: $json"
import json, sys
r = json.loads(sys.argv[1])
assert r["probes"]["total"] == 2 and all(x < 0 for i in r["probes"]["items"] for x in i["log_likelihood"])
print("ok   masked-LM probes scored")
PY
expect_error mlm-generate "needs a causal LM" generate --ckpt "$tmp/mlm/checkpoints" --prompt x

if [ $failures -ne 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "eval/generate CLI: all checks passed"
