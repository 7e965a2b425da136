#!/usr/bin/env bash
# The demo: install what is missing, build strata, turn real text into token datasets with
# `strata prepare` (normalisation, quality filters, exact and near dedup, PII scrubbing on),
# print what each step removed, then train a small LLaMA-style model on the blend for a few
# hundred steps on one rank, printing the falling loss, tokens/s, MFU and data wait, then
# evaluate the checkpoint it saved (validation perplexity on the held-out windows, accuracy on
# cloze probes of facts from the corpus) and let it continue a prompt.
# Extra arguments are passed to `strata train` (e.g. --set train.steps=50).
#   STRATA_TOKENIZER=gpt2 scripts/demo.sh   # once the GPT-2 tokenizer is in (vocab 50257)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
bash scripts/build.sh strata
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
strata="${BUILD_DIR:-build}/strata"
tokenizer="${STRATA_TOKENIZER:-bytes}"
case "$tokenizer" in
  bytes) vocab=257 ;;     # 256 bytes + EOS
  gpt2) vocab=50257 ;;
  *) vocab="${STRATA_VOCAB:?set STRATA_VOCAB for tokenizer $tokenizer}" ;;
esac

# The demo corpus (Debian packages bible-kjv, fortunes): KJV chapters and fortune cookies,
# prepared into token datasets (scripts/prepare-demo-data.sh, shared with the slurm tests).
data="runs/demo-data"
bash scripts/prepare-demo-data.sh "$strata" "$data" "$tokenizer"
echo
"$strata" data inspect "$data/fortunes.h5" --sample 200 | sed -n '1,9p;/token histogram/,$p' | head -24

echo
echo "== strata train =="
out="runs/demo"
"$strata" train --config configs/demo.yaml --set "data.tokenizer=$tokenizer" --set "model.vocab_size=$vocab" \
  --set "train.out_dir=$out" "$@"
echo
echo "demo: metrics of every step are in $out/metrics.jsonl"
python3 - "$out/metrics.jsonl" <<'PY' || true
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "step_ms" in r]  # step lines, not validation
first, last = rows[0], rows[-1]
tail = rows[len(rows) // 2:]
mean = lambda k: sum(r[k] for r in tail) / len(tail)
print(f"demo: loss {first['loss']:.3f} -> {last['loss']:.3f} over {len(rows)} steps; "
      f"{mean('tokens_per_s'):.0f} tokens/s, {mean('tflops') * 1e3:.1f} GFLOP/s, "
      f"MFU {100 * mean('mfu'):.1f}%, data wait {mean('data_wait_ms'):.2f} ms/step (second half of the run)")
PY

# The checkpoint the run saved at its end: held-out perplexity, cloze-probe accuracy, and a
# continuation of a prompt (sampled, seeded: the same text every run).
ckpt="$out/checkpoints"
echo
echo "== strata eval =="
"$strata" eval --ckpt "$ckpt" --probes data/probes/demo_probes.jsonl --windows 128
echo
echo "== strata generate =="
"$strata" generate --ckpt "$ckpt" --prompt "And the LORD said unto Moses," --max-new-tokens 160 \
  --temperature 0.7 --top-p 0.9 --seed 1
