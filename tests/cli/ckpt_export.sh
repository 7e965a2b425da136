#!/usr/bin/env bash
# `strata ckpt inspect` and `strata ckpt export-hf` on real checkpoints: a tiny GPT-2-style
# and a tiny LLaMA-style model (GQA, untied) are trained for 2 steps, inspected, exported
# (fp32 in one file, bf16 in shards) and checked by an independent reader
# (tests/cli/check_hf_export.py: Python's standard library for safetensors, h5ls/h5dump for
# the checkpoint). Models HF cannot express and bad options are one-line errors.
# usage: ckpt_export.sh STRATA_BINARY SOURCE_DIR
set -uo pipefail
strata="$1"
src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$src/tests/cli/lib.bash"
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
for tool in python3 h5ls h5dump; do
  command -v $tool >/dev/null || { echo "FAIL $tool is missing (scripts/install-deps.sh installs it)"; exit 1; }
done
check() { python3 "$src/tests/cli/check_hf_export.py" "$@"; }

train() {  # train NAME [--set ...]: 2 steps with a checkpoint at the end, in $tmp/NAME
  local name="$1"; shift
  local out
  out=$(timeout 120 "$strata" train --config "$src/configs/test_tiny.yaml" --set train.steps=2 \
        --set "train.out_dir=$tmp/$name" --set "ckpt.dir=$tmp/$name/ckpt" "$@" 2>&1) || fail "train $name: $out"
}

# --- GPT-2 style: LayerNorm, GELU, learned positions, tied, biases (test_tiny's defaults) ---
train gpt
ck="$tmp/gpt/ckpt"
[ -f "$ck/latest" ] || fail "train gpt wrote no $ck/latest"
file="$ck/$(cat "$ck/latest" 2>/dev/null)"

out=$(timeout 60 "$strata" ckpt inspect "$ck" 2>&1) || fail "inspect: $out"
for want in "step              2" "layout            tp1-pp1-dp1" "tokens seen       512" "HF export         gpt2" \
            "/model/layers.1.attn.wq.weight" "/optim/exp_avg_sq/embed.wte" "checksums         all match"; do
  grep -qF -- "$want" <<<"$out" || fail "inspect lacks '$want': $out"
done
json=$(timeout 60 "$strata" ckpt inspect --json "$file" 2>&1) || fail "inspect --json: $json"
python3 - "$json" <<'EOF' || fail "inspect --json content"
import json, sys
j = json.loads(sys.argv[1])
assert j["step"] == 2 and j["checksum_mismatches"] == 0, j
names = {t["path"]: t for t in j["tensors"]}
t = names["/model/embed.wte"]
assert t["shape"] == [64, 64] and t["bytes"] == 64 * 64 * 4 and t["checksum_ok"], t
assert all(t["checksum_ok"] for t in j["tensors"])
EOF

out=$(timeout 60 "$strata" ckpt export-hf "$ck" --out "$tmp/gpt_fp32" --dtype fp32 --tokenizer none 2>&1) ||
  fail "export gpt fp32: $out"
grep -qF "as Hugging Face gpt2" <<<"$out" || fail "export summary lacks the architecture: $out"
timeout 60 "$strata" eval --ckpt "$ck" --logits 3,17,5,60,0,9 >"$tmp/gpt_logits.json" 2>"$tmp/err.txt" ||
  fail "eval --logits: $(cat "$tmp/err.txt")"
check "$file" "$tmp/gpt_fp32" --arch gpt2 --dtype fp32 --heads 4 --logits "$tmp/gpt_logits.json" ||
  fail "gpt2 fp32 export check"
# bf16 in shards of at most 40 KB (about 210 KB of weights)
out=$(timeout 60 "$strata" ckpt export-hf "$file" --out "$tmp/gpt_bf16" --max-shard-size 40KB 2>&1) ||
  fail "export gpt bf16: $out"
check "$file" "$tmp/gpt_bf16" --arch gpt2 --dtype bf16 --heads 4 --min-shards 4 || fail "gpt2 bf16 sharded export check"

# --- LLaMA style: RMSNorm, SwiGLU, RoPE, GQA, untied, no biases; a byte-level tokenizer ---
train llama --set model.norm=rmsnorm --set model.mlp=swiglu --set model.positions=rope --set model.num_kv_heads=2 \
  --set model.bias=false --set model.tied_embeddings=false --set model.ffn_hidden=96 --set model.vocab_size=300
ck="$tmp/llama/ckpt"
file="$ck/$(cat "$ck/latest" 2>/dev/null)"
out=$(timeout 60 "$strata" ckpt export-hf "$ck" --out "$tmp/llama_bf16" --tokenizer bytes 2>&1) || fail "export llama: $out"
grep -qF "as Hugging Face llama" <<<"$out" || fail "export summary lacks the architecture: $out"
check "$file" "$tmp/llama_bf16" --arch llama --dtype bf16 --heads 4 --kv-heads 2 || fail "llama bf16 export check"
python3 - "$tmp/llama_bf16" <<'EOF' || fail "llama tokenizer.json"
import json, os, sys
d = sys.argv[1]
tok = json.load(open(os.path.join(d, "tokenizer.json")))
vocab = tok["model"]["vocab"]
assert tok["model"]["type"] == "BPE" and tok["model"]["merges"] == [], tok["model"]["type"]
assert len(vocab) == 257 and sorted(vocab.values()) == list(range(257)) and vocab["<|endoftext|>"] == 256, len(vocab)
assert tok["model"]["vocab"]["A"] == 65  # byte 0x41 -> id 65 (GPT-2's printable byte map keeps 'A')
assert [(t["id"], t["content"]) for t in tok["added_tokens"]] == [(256, "<|endoftext|>")]
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["eos_token_id"] == 256 and cfg["bos_token_id"] == 256, cfg
tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
assert tc["tokenizer_class"] == "PreTrainedTokenizerFast" and tc["eos_token"] == "<|endoftext|>", tc
EOF

# a tokenizer.json (here one trained by strata) is copied as it is, fp32 this time
out=$(timeout 120 "$strata" tokenizer train --input /usr/share/common-licenses/GPL-3 --vocab-size 300 \
      --output "$tmp/tok.json" 2>&1) || fail "tokenizer train: $out"
out=$(timeout 60 "$strata" ckpt export-hf "$file" --out "$tmp/llama_fp32" --dtype fp32 --tokenizer "$tmp/tok.json" 2>&1) ||
  fail "export llama fp32: $out"
cmp -s "$tmp/tok.json" "$tmp/llama_fp32/tokenizer.json" || fail "tokenizer.json is not a copy of $tmp/tok.json"
timeout 60 "$strata" eval --ckpt "$ck" --logits 72,101,108,108,111,33 >"$tmp/llama_logits.json" 2>"$tmp/err.txt" ||
  fail "eval --logits: $(cat "$tmp/err.txt")"
check "$file" "$tmp/llama_fp32" --arch llama --dtype fp32 --heads 4 --kv-heads 2 --logits "$tmp/llama_logits.json" ||
  fail "llama fp32 export check"

# --- LLaMA style with biases (q, k, v, o; gate, up and down: attention_bias, mlp_bias): the
# decoder behind strata eval applies every bias training does, as the export's forward shows ---
train llama_bias --set model.norm=rmsnorm --set model.mlp=swiglu --set model.positions=rope --set model.num_kv_heads=2 \
  --set model.bias=true --set model.tied_embeddings=false --set model.ffn_hidden=96 --set model.vocab_size=300
ck="$tmp/llama_bias/ckpt"
file="$ck/$(cat "$ck/latest" 2>/dev/null)"
out=$(timeout 60 "$strata" ckpt export-hf "$ck" --out "$tmp/llama_bias_fp32" --dtype fp32 --tokenizer none 2>&1) ||
  fail "export llama with biases: $out"
timeout 60 "$strata" eval --ckpt "$ck" --logits 72,101,108,108,111,33 >"$tmp/llama_bias_logits.json" 2>"$tmp/err.txt" ||
  fail "eval --logits: $(cat "$tmp/err.txt")"
check "$file" "$tmp/llama_bias_fp32" --arch llama --dtype fp32 --heads 4 --kv-heads 2 \
  --logits "$tmp/llama_bias_logits.json" || fail "llama with biases: export check and logits"

# --- a run on prepared data: the tokenizer comes from the run (data.tokenizer unset: the
# dataset's own), and one with another content hash is refused ---
out=$(timeout 60 "$strata" prepare --input /usr/share/common-licenses/GPL-3 --tokenizer bytes --output "$tmp/gpl.h5" 2>&1) ||
  fail "prepare: $out"
train data --set model.vocab_size=257 --set data.source=hdf5 --set "data.datasets=[{path: $tmp/gpl.h5}]"
out=$(timeout 60 "$strata" ckpt export-hf "$tmp/data/ckpt" --out "$tmp/data_hf" 2>&1) || fail "export data run: $out"
grep -qF "tokenizer  tokenizer.json (byte-level" <<<"$out" || fail "the run's tokenizer was not exported: $out"
out=$(timeout 120 "$strata" tokenizer train --input /usr/share/common-licenses/GPL-3 --vocab-size 257 \
      --output "$tmp/tok257.json" 2>&1) || fail "tokenizer train: $out"
expect_error "tokenizer of another run refused" "the checkpoint was trained with" \
  ckpt export-hf "$tmp/data/ckpt" --out "$tmp/w" --tokenizer "$tmp/tok257.json"

# --- refusals and bad input: one line each ---
train swiglu_ln --set model.mlp=swiglu
expect_error "layernorm+swiglu refused" "mlp=swiglu (HF needs gelu)" ckpt export-hf "$tmp/swiglu_ln/ckpt" --out "$tmp/x"
[ -e "$tmp/x/model.safetensors" ] && fail "a refused export wrote weights"
expect_error "tokenizer larger than the vocabulary" "the model's vocabulary only 64" \
  ckpt export-hf "$tmp/gpt/ckpt" --out "$tmp/y" --tokenizer bytes
out=$(timeout 60 "$strata" ckpt export-hf "$tmp/gpt/ckpt" --out "$tmp/y" --dtype fp16 2>&1) && fail "--dtype fp16 accepted"
grep -qF -- "--dtype: fp16 not in {bf16,fp32}" <<<"$out" || fail "bad dtype message: $out"
expect_error "bad shard size" "size '5XB'" ckpt export-hf "$tmp/gpt/ckpt" --out "$tmp/y" --max-shard-size 5XB
expect_error "missing checkpoint" "$tmp/nope" ckpt inspect "$tmp/nope"

# a corrupted value: inspect reports the tensor and exits 2, export refuses
cp "$tmp/gpt/ckpt/$(cat "$tmp/gpt/ckpt/latest")" "$tmp/bad.h5"
python3 - "$tmp/bad.h5" "$(h5dump -y -w 0 -m %.9g -d /model/layers.1.mlp.fc.weight -s 0,0 -c 1,4 "$tmp/bad.h5")" <<'EOF' ||
import re, struct, sys
path, dump = sys.argv[1], sys.argv[2]
vals = [float(v) for v in re.search(r"DATA \{([^}]*)\}", dump).group(1).split(",") if v.strip()]
pattern = struct.pack("<4f", *vals)  # the tensor's first 16 bytes, as stored (contiguous)
blob = bytearray(open(path, "rb").read())
assert blob.count(pattern) == 1, blob.count(pattern)
blob[blob.index(pattern)] ^= 0x01  # lowest mantissa bit of element 0
open(path, "wb").write(blob)
EOF
  fail "could not corrupt the checkpoint copy"
out=$(timeout 60 "$strata" ckpt inspect "$tmp/bad.h5" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "inspect of a corrupted file exited $rc, want 2"
grep -E -q "/model/layers.1.mlp.fc.weight .*MISMATCH" <<<"$out" || fail "inspect does not flag the tensor: $out"
grep -qF "checksums         1 MISMATCH" <<<"$out" || fail "inspect summary: $out"
expect_error "corrupted tensor refused" "/model/layers.1.mlp.fc.weight does not match its stored checksum" \
  ckpt export-hf "$tmp/bad.h5" --out "$tmp/z"

[ $failures -eq 0 ] && echo "ckpt export CLI: all checks passed"
exit $((failures > 0))
