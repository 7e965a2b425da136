#!/usr/bin/env python3
"""Independent check of `strata ckpt export-hf` (Python 3 standard library only).

Reads the export with its own safetensors parser (struct + json: header length, header JSON,
dtypes, shapes, contiguous in-bounds offsets, shards and their index) and the checkpoint
with HDF5's own command-line tools (h5ls for names and shapes, h5dump -b for the raw
float32 values), applies its own copy of the GPT-2 / LLaMA mapping (Conv1D transposition,
q|k|v fusion, zero biases) and compares every value: fp32 exactly, bf16 as the nearest
bf16 of the fp32 value with ties to even.

With --logits FILE (the JSON of `strata eval --logits`), it also runs its own forward pass of
the exported model in plain Python, with Hugging Face's math for the architecture (GPT-2:
Conv1D weights, gelu_new, learned positions; LLaMA: RMSNorm, rotate-half RoPE, grouped-query
attention, SiLU-gated MLP with the biases config.json declares), and compares its logits with
strata's at every position.

usage: check_hf_export.py CHECKPOINT.h5 EXPORT_DIR --arch gpt2|llama --dtype fp32|bf16 --heads N
                          [--kv-heads N] [--logits STRATA_LOGITS.json]
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys

errors = []


def fail(msg):
    errors.append(msg)
    print("FAIL " + msg)


# ---- the checkpoint, through HDF5's own h5dump -------------------------------------------

def h5_model_tensors(ckpt):
    """{name: (shape, values)} of every /model/<name> dataset, from one `h5dump` of the group
    (values printed with %.9g, which round-trips float32 exactly)."""
    out = subprocess.run(["h5dump", "-y", "-w", "0", "-m", "%.9g", "-g", "/model", ckpt],
                         check=True, capture_output=True, text=True).stdout
    tensors = {}
    name = shape = values = None
    in_data = False
    for line in out.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        m = re.match(r'^DATASET "(.+)" \{$', text)
        if m and indent == 3:
            name, shape, values = m.group(1), None, None
            continue
        if name is None:
            continue
        if indent == 6 and text.startswith("DATATYPE") and "H5T_IEEE_F32LE" not in text:
            fail(f"checkpoint /model/{name} is not little-endian float32: {text}")
        m = re.match(r"^DATASPACE\s+SIMPLE \{ \( ([\d, ]+) \)", text)
        if m and indent == 6:
            shape = [int(d) for d in m.group(1).split(",")]
        if indent == 6 and text == "DATA {":
            in_data, values = True, []
            continue
        if in_data:
            if text == "}":
                in_data = False
                n = math.prod(shape)
                if len(values) != n:
                    fail(f"h5dump gave {len(values)} values for /model/{name} {shape}, want {n}")
                # through float32: the exact stored value
                tensors[name] = (shape, list(struct.unpack("<%df" % n, struct.pack("<%df" % n, *values))))
                name = None
            else:
                values += [float(v) for v in text.split(",") if v.strip()]
    return tensors


# ---- the export, with our own safetensors parser ----------------------------------------

DTYPE_SIZE = {"F32": 4, "BF16": 2}


def bf16_bits_to_float(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(f"{path}: shorter than the 8-byte header length")
        return {}
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
        return {}
    text = blob[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail(f"{path}: header does not start with '{{'")
    if n % 8 != 0:
        fail(f"{path}: header length {n} is not a multiple of 8 (data not aligned)")
    header = json.loads(text)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        fail(f"{path}: __metadata__ is {meta}, want {{'format': 'pt'}}")
    spans = []
    tensors = {}
    for name, t in header.items():
        if set(t) != {"dtype", "shape", "data_offsets"}:
            fail(f"{path}: {name} has keys {sorted(t)}")
            continue
        dtype, shape, (begin, end) = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in DTYPE_SIZE:
            fail(f"{path}: {name} has dtype {dtype}")
            continue
        count = math.prod(shape)
        if end - begin != count * DTYPE_SIZE[dtype]:
            fail(f"{path}: {name} spans {end - begin} bytes, {dtype} {shape} needs {count * DTYPE_SIZE[dtype]}")
            continue
        if not (0 <= begin <= end <= len(data)):
            fail(f"{path}: {name} offsets [{begin}, {end}) outside the data ({len(data)} bytes)")
            continue
        spans.append((begin, end, name))
        raw = data[begin:end]
        if dtype == "F32":
            values = list(struct.unpack("<%df" % count, raw))
        else:
            values = [bf16_bits_to_float(h) for h in struct.unpack("<%dH" % count, raw)]
        tensors[name] = (dtype, shape, values)
    spans.sort()
    pos = 0
    for begin, end, name in spans:  # contiguous, no gap, no overlap, covering all the data
        if begin != pos:
            fail(f"{path}: {name} starts at {begin}, the previous tensor ends at {pos}")
        pos = end
    if pos != len(data):
        fail(f"{path}: tensors end at {pos}, the data has {len(data)} bytes")
    return tensors


def read_export(folder):
    index_path = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if not os.path.exists(index_path):
        return read_safetensors(single), 1
    if os.path.exists(single):
        fail("both model.safetensors and an index: transformers would read the single file")
    with open(index_path) as f:
        index = json.load(f)
    weight_map = index["weight_map"]
    files = sorted(set(weight_map.values()))
    for i, name in enumerate(files):
        want = "model-%05d-of-%05d.safetensors" % (i + 1, len(files))
        if name != want:
            fail(f"shard {i + 1} is named {name}, want {want}")
    tensors = {}
    total = 0
    for name in files:
        part = read_safetensors(os.path.join(folder, name))
        for t, v in part.items():
            if weight_map.get(t) != name:
                fail(f"{t} is in {name}, the index says {weight_map.get(t)}")
            if t in tensors:
                fail(f"{t} is in two shards")
            tensors[t] = v
            total += len(v[2]) * DTYPE_SIZE[v[0]]
    if set(weight_map) != set(tensors):
        fail(f"index and shards disagree on tensor names: {sorted(set(weight_map) ^ set(tensors))}")
    if index["metadata"]["total_size"] != total:
        fail(f"index total_size {index['metadata']['total_size']}, the shards hold {total} bytes")
    return tensors, len(files)


# ---- our own copy of the mapping ---------------------------------------------------------

def transpose(values, rows, cols):
    """[rows, cols] row-major -> [cols, rows]."""
    return [values[r * cols + c] for c in range(cols) for r in range(rows)]


def expected_tensors(arch, shapes, read):
    """{hf name: (shape, values)} built from the checkpoint."""
    layers = sorted({int(m.group(1)) for n in shapes for m in [re.match(r"layers\.(\d+)\.", n)] if m})
    want = {}

    def get(name):
        return shapes[name], read(name)

    if arch == "gpt2":
        C = shapes["embed.wte"][1]
        want["transformer.wte.weight"] = get("embed.wte")
        want["transformer.wpe.weight"] = get("embed.wpe")

        def bias(name, n):
            return get(name) if name in shapes else ([n], [0.0] * n)

        def conv1d(*names):  # HF Conv1D: weight [in, out]; several sources fused along out
            rows, vals = 0, []
            for nm in names:
                s, v = get(nm)
                rows += s[0]
                cols = s[1]
                vals += v
            return [cols, rows], transpose(vals, rows, cols)

        for l in layers:
            s, h = f"layers.{l}.", f"transformer.h.{l}."
            want[h + "ln_1.weight"] = get(s + "attn_norm.weight")
            want[h + "ln_1.bias"] = bias(s + "attn_norm.bias", C)
            want[h + "attn.c_attn.weight"] = conv1d(s + "attn.wq.weight", s + "attn.wk.weight", s + "attn.wv.weight")
            qkv = [s + f"attn.w{p}.bias" for p in "qkv"]
            if all(n in shapes for n in qkv):
                vals = read(qkv[0]) + read(qkv[1]) + read(qkv[2])
                want[h + "attn.c_attn.bias"] = ([len(vals)], vals)
            else:
                n = want[h + "attn.c_attn.weight"][0][1]
                want[h + "attn.c_attn.bias"] = ([n], [0.0] * n)
            want[h + "attn.c_proj.weight"] = conv1d(s + "attn.wo.weight")
            want[h + "attn.c_proj.bias"] = bias(s + "attn.wo.bias", C)
            want[h + "ln_2.weight"] = get(s + "mlp_norm.weight")
            want[h + "ln_2.bias"] = bias(s + "mlp_norm.bias", C)
            want[h + "mlp.c_fc.weight"] = conv1d(s + "mlp.fc.weight")
            want[h + "mlp.c_fc.bias"] = bias(s + "mlp.fc.bias", shapes[s + "mlp.fc.weight"][0])
            want[h + "mlp.c_proj.weight"] = conv1d(s + "mlp.proj.weight")
            want[h + "mlp.c_proj.bias"] = bias(s + "mlp.proj.bias", C)
        want["transformer.ln_f.weight"] = get("final_norm.weight")
        want["transformer.ln_f.bias"] = bias("final_norm.bias", C)
    else:
        want["model.embed_tokens.weight"] = get("embed.wte")
        for l in layers:
            s, h = f"layers.{l}.", f"model.layers.{l}."
            want[h + "input_layernorm.weight"] = get(s + "attn_norm.weight")
            want[h + "post_attention_layernorm.weight"] = get(s + "mlp_norm.weight")
            for p in "qkvo":
                want[h + f"self_attn.{p}_proj.weight"] = get(s + f"attn.w{p}.weight")
                if s + f"attn.w{p}.bias" in shapes:
                    want[h + f"self_attn.{p}_proj.bias"] = get(s + f"attn.w{p}.bias")
            for p in ("gate", "up", "down"):
                want[h + f"mlp.{p}_proj.weight"] = get(s + f"mlp.{p}.weight")
                if s + f"mlp.{p}.bias" in shapes:
                    want[h + f"mlp.{p}_proj.bias"] = get(s + f"mlp.{p}.bias")
        want["model.norm.weight"] = get("final_norm.weight")
    if "lm_head.weight" in shapes:
        want["lm_head.weight"] = get("lm_head.weight")
    return want, layers


def nearest_bf16(x):
    """The bf16 value nearest to the float32 x, ties to the even mantissa, by comparing
    distances (not by the writer's bit trick). x and its two bf16 neighbours are float32
    values of one binade (or the next power of two), so their differences are exact in
    Python's double."""
    if math.isnan(x) or math.isinf(x):
        return x
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    lo = u >> 16
    a, b = bf16_bits_to_float(lo), bf16_bits_to_float(lo + 1)  # b: next away from zero (or inf)
    if math.isinf(b):  # past the largest finite bf16: inf when x is at least halfway
        half = a + (a - bf16_bits_to_float(lo - 1)) / 2
        return b if abs(x) >= abs(half) else a
    da, db = abs(x - a), abs(b - x)
    if da != db:
        return a if da < db else b
    return a if lo % 2 == 0 else b


# ---- an independent forward pass over the exported tensors (Hugging Face's math) ----------

def matvec(x, w, rows, cols, transposed=False):
    """x [cols] times w^T (w [rows, cols], nn.Linear) -> [rows]; transposed: w [cols, rows] (Conv1D)."""
    if transposed:
        return [sum(x[c] * w[c * rows + r] for c in range(cols)) for r in range(rows)]
    return [sum(x[c] * w[r * cols + c] for c in range(cols)) for r in range(rows)]


def add(a, b):
    return [x + y for x, y in zip(a, b)]


def layer_norm(x, g, b, eps):
    m = sum(x) / len(x)
    v = sum((t - m) ** 2 for t in x) / len(x)
    r = 1.0 / math.sqrt(v + eps)
    return [(t - m) * r * gi + bi for t, gi, bi in zip(x, g, b)]


def rms_norm(x, g, eps):
    r = 1.0 / math.sqrt(sum(t * t for t in x) / len(x) + eps)
    return [t * r * gi for t, gi in zip(x, g)]


def softmax(s):
    m = max(s)
    e = [math.exp(t - m) for t in s]
    z = sum(e)
    return [t / z for t in e]


def hf_forward(arch, tensors, cfg, tokens):
    """Logits [len(tokens), V] of the exported model (fp32 values, computed in double)."""
    T = {n: v[2] for n, v in tensors.items()}
    S = {n: v[1] for n, v in tensors.items()}
    if arch == "gpt2":
        C, L, H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        V = S["transformer.wte.weight"][0]
        hd = C // H
        xs = [add(T["transformer.wte.weight"][t * C:(t + 1) * C], T["transformer.wpe.weight"][p * C:(p + 1) * C])
              for p, t in enumerate(tokens)]
        for l in range(L):
            h = f"transformer.h.{l}."
            a = [layer_norm(x, T[h + "ln_1.weight"], T[h + "ln_1.bias"], eps) for x in xs]
            qkv = [add(matvec(x, T[h + "attn.c_attn.weight"], 3 * C, C, True), T[h + "attn.c_attn.bias"]) for x in a]
            att = []
            for i in range(len(xs)):
                out = []
                for hh in range(H):
                    q = qkv[i][hh * hd:(hh + 1) * hd]
                    sc = [sum(q[d] * qkv[j][C + hh * hd + d] for d in range(hd)) / math.sqrt(hd) for j in range(i + 1)]
                    p = softmax(sc)
                    out += [sum(p[j] * qkv[j][2 * C + hh * hd + d] for j in range(i + 1)) for d in range(hd)]
                att.append(out)
            xs = [add(x, add(matvec(y, T[h + "attn.c_proj.weight"], C, C, True), T[h + "attn.c_proj.bias"]))
                  for x, y in zip(xs, att)]
            F = S[h + "mlp.c_fc.weight"][1]
            m = [layer_norm(x, T[h + "ln_2.weight"], T[h + "ln_2.bias"], eps) for x in xs]
            for i, x in enumerate(m):
                u = add(matvec(x, T[h + "mlp.c_fc.weight"], F, C, True), T[h + "mlp.c_fc.bias"])
                u = [0.5 * t * (1 + math.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t ** 3))) for t in u]  # gelu_new
                xs[i] = add(xs[i], add(matvec(u, T[h + "mlp.c_proj.weight"], C, F, True), T[h + "mlp.c_proj.bias"]))
        f = [layer_norm(x, T["transformer.ln_f.weight"], T["transformer.ln_f.bias"], eps) for x in xs]
        head = T.get("lm_head.weight", T["transformer.wte.weight"])
        return [matvec(x, head, V, C) for x in f]
    C, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KV, eps, theta = cfg["num_key_value_heads"], cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    V = S["model.embed_tokens.weight"][0]
    hd = C // H
    F = cfg["intermediate_size"]

    def lin(x, name, rows, cols):
        y = matvec(x, T[name + ".weight"], rows, cols)
        return add(y, T[name + ".bias"]) if name + ".bias" in T else y

    def rope(v, pos):  # rotate-half: element i pairs with i + hd/2
        out = list(v)
        for i in range(hd // 2):
            ang = pos * theta ** (-2.0 * i / hd)
            c, s_ = math.cos(ang), math.sin(ang)
            out[i] = v[i] * c - v[i + hd // 2] * s_
            out[i + hd // 2] = v[i] * s_ + v[i + hd // 2] * c
        return out

    xs = [T["model.embed_tokens.weight"][t * C:(t + 1) * C] for t in tokens]
    for l in range(L):
        h = f"model.layers.{l}."
        a = [rms_norm(x, T[h + "input_layernorm.weight"], eps) for x in xs]
        q = [lin(x, h + "self_attn.q_proj", H * hd, C) for x in a]
        k = [lin(x, h + "self_attn.k_proj", KV * hd, C) for x in a]
        v = [lin(x, h + "self_attn.v_proj", KV * hd, C) for x in a]
        q = [sum((rope(qi[hh * hd:(hh + 1) * hd], p) for hh in range(H)), []) for p, qi in enumerate(q)]
        k = [sum((rope(ki[hh * hd:(hh + 1) * hd], p) for hh in range(KV)), []) for p, ki in enumerate(k)]
        att = []
        for i in range(len(xs)):
            out = []
            for hh in range(H):
                kh = hh // (H // KV)
                sc = [sum(q[i][hh * hd + d] * k[j][kh * hd + d] for d in range(hd)) / math.sqrt(hd) for j in range(i + 1)]
                p = softmax(sc)
                out += [sum(p[j] * v[j][kh * hd + d] for j in range(i + 1)) for d in range(hd)]
            att.append(out)
        xs = [add(x, lin(y, h + "self_attn.o_proj", C, H * hd)) for x, y in zip(xs, att)]
        m = [rms_norm(x, T[h + "post_attention_layernorm.weight"], eps) for x in xs]
        for i, x in enumerate(m):
            g, u = lin(x, h + "mlp.gate_proj", F, C), lin(x, h + "mlp.up_proj", F, C)
            act = [gi / (1 + math.exp(-gi)) * ui for gi, ui in zip(g, u)]
            xs[i] = add(xs[i], lin(act, h + "mlp.down_proj", C, F))
    f = [rms_norm(x, T["model.norm.weight"], eps) for x in xs]
    head = T.get("lm_head.weight", T["model.embed_tokens.weight"])
    return [matvec(x, head, V, C) for x in f]


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("export")
    ap.add_argument("--arch", required=True, choices=["gpt2", "llama"])
    ap.add_argument("--dtype", required=True, choices=["fp32", "bf16"])
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, default=0)
    ap.add_argument("--min-shards", type=int, default=1)
    ap.add_argument("--logits", help="strata eval --logits JSON to compare with this script's own forward")
    args = ap.parse_args()

    stored = h5_model_tensors(args.checkpoint)
    if not stored:
        fail(f"h5dump found no /model tensors in {args.checkpoint}")
        return 1
    shapes = {n: s for n, (s, _) in stored.items()}

    def read(name):
        return stored[name][1]

    got, num_files = read_export(args.export)
    if num_files < args.min_shards:
        fail(f"{num_files} safetensors file(s), want at least {args.min_shards}")
    want, layers = expected_tensors(args.arch, shapes, read)
    if set(got) != set(want):
        fail(f"tensor names differ: missing {sorted(set(want) - set(got))}, unexpected {sorted(set(got) - set(want))}")
    st_dtype = "F32" if args.dtype == "fp32" else "BF16"
    checked = 0
    for name in sorted(set(got) & set(want)):
        dtype, shape, values = got[name]
        wshape, wvalues = want[name]
        if dtype != st_dtype:
            fail(f"{name}: dtype {dtype}, want {st_dtype}")
        if shape != wshape:
            fail(f"{name}: shape {shape}, want {wshape}")
            continue
        bad = 0
        for i, (g, w) in enumerate(zip(values, wvalues)):
            expect = w if dtype == "F32" else nearest_bf16(w)
            if not same(g, expect):
                if bad < 3:
                    fail(f"{name}[{i}] = {g!r}, want {expect!r} (checkpoint value {w!r})")
                bad += 1
        if bad:
            fail(f"{name}: {bad} of {len(values)} values differ")
        checked += len(values)

    with open(os.path.join(args.export, "config.json")) as f:
        cfg = json.load(f)
    V, C = shapes["embed.wte"]
    tied = "lm_head.weight" not in shapes
    expect = {"vocab_size": V, "tie_word_embeddings": tied,
              "torch_dtype": "float32" if args.dtype == "fp32" else "bfloat16"}
    if args.arch == "gpt2":
        expect.update({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": C,
                       "n_layer": len(layers), "n_head": args.heads, "n_positions": shapes["embed.wpe"][0],
                       "n_inner": shapes["layers.0.mlp.fc.weight"][0], "activation_function": "gelu_new"})
    else:
        hd = C // args.heads
        expect.update({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": C,
                       "num_hidden_layers": len(layers), "num_attention_heads": args.heads,
                       "num_key_value_heads": shapes["layers.0.attn.wk.weight"][0] // hd,
                       "intermediate_size": shapes["layers.0.mlp.gate.weight"][0], "hidden_act": "silu"})
        if args.kv_heads and expect["num_key_value_heads"] != args.kv_heads:
            fail(f"checkpoint's wk rows say {expect['num_key_value_heads']} kv heads, want {args.kv_heads}")
    for k, v in expect.items():
        if cfg.get(k) != v:
            fail(f"config.json {k} = {cfg.get(k)!r}, want {v!r}")

    if args.logits:
        with open(args.logits) as f:
            theirs = json.load(f)
        ours = hf_forward(args.arch, got, cfg, theirs["tokens"])
        worst = 0.0
        for p, (a, b) in enumerate(zip(ours, theirs["logits"])):
            if len(a) != len(b):
                fail(f"position {p}: {len(b)} logits from strata, {len(a)} from the export")
                continue
            worst = max(worst, max(abs(x - y) for x, y in zip(a, b)))
        # fp32 weights; strata computes in fp32 (a few ulps per sum), this script in double:
        # agreement to 1e-4 absolute at logits of order 1. A missing bias or a wrong mapping
        # moves them by 1e-2 or more.
        tol = 1e-4 if args.dtype == "fp32" else 5e-2
        if worst > tol:
            fail(f"logits differ from strata's by up to {worst:.3g} (tolerance {tol})")
        else:
            print(f"check_hf_export: the export's forward ({args.arch}, plain Python) gives strata's logits at "
                  f"{len(ours)} positions to {worst:.2g}")

    if errors:
        print(f"check_hf_export: {len(errors)} problem(s)")
        return 1
    print(f"check_hf_export: {len(got)} tensors, {checked} values in {num_files} file(s) match the checkpoint "
          f"({args.arch}, {args.dtype}); config.json agrees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
