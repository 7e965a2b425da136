#!/usr/bin/env bash
# The demo corpus as token datasets: KJV chapters and fortune cookies (Debian packages
# bible-kjv, fortunes) as JSONL, then `strata prepare` on each (normalisation, quality filters,
# exact and near dedup, PII scrubbing), printing what each step removed. About 5 s here.
# Used by scripts/demo.sh and the slurm tests (configs/pretrain_tiny.yaml reads the output).
#   scripts/prepare-demo-data.sh STRATA_BINARY OUT_DIR [TOKENIZER]    (tokenizer: bytes)
# Writes OUT_DIR/corpus/{kjv,fortunes}.jsonl, OUT_DIR/{kjv,fortunes}.h5 and their reports.
set -euo pipefail
strata="$1"; data="$2"; tokenizer="${3:-bytes}"
root="$(cd "$(dirname "$0")/.." && pwd)"

mkdir -p "$data"
# The fortunes hold real duplicates (the same entry in several files, the same quote with
# another attribution), which deduplication removes.
python3 "$root/scripts/make-demo-corpus.py" "$data/corpus"
# Fortunes are short: keep entries of 10+ words (Gopher's 50-word minimum would drop most).
for part in kjv fortunes; do
  echo
  echo "== strata prepare: $part =="
  "$strata" prepare --input "$data/corpus/$part.jsonl" --tokenizer "$tokenizer" --output "$data/$part.h5" \
    --min-words 10 --near-dup-threshold 0.8 --progress 2 --report "$data/$part.report.json"
done
