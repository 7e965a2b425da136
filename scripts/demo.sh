#!/usr/bin/env bash
# The demo: install what is missing, build strata, train a small LLaMA-style byte-level
# model on real English text for a few hundred steps on one rank, printing the falling loss,
# tokens/s and MFU. Extra arguments are passed to `strata train` (e.g. --set train.steps=50).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
bash scripts/build.sh strata
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# The demo corpus: the licence texts every Debian system ships (GPL, Apache, MPL, ...;
# about 270 KB of English), read byte by byte.
corpus=(/usr/share/common-licenses/{Apache-2.0,Artistic,BSD,CC0-1.0,GFDL-1.2,GFDL-1.3,GPL-1,GPL-2,GPL-3,LGPL-2,LGPL-2.1,LGPL-3,MPL-1.1,MPL-2.0})
paths=$(IFS=,; echo "${corpus[*]}")
out="runs/demo"
"${BUILD_DIR:-build}/strata" train --config configs/demo.yaml --set "data.paths=[$paths]" \
  --set "train.out_dir=$out" "$@"
echo
echo "demo: metrics of every step are in $out/metrics.jsonl"
python3 - "$out/metrics.jsonl" <<'PY' || true
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0], rows[-1]
tail = rows[len(rows) // 2:]
mean = lambda k: sum(r[k] for r in tail) / len(tail)
print(f"demo: loss {first['loss']:.3f} -> {last['loss']:.3f} over {len(rows)} steps; "
      f"{mean('tokens_per_s'):.0f} tokens/s, {mean('tflops') * 1e3:.1f} GFLOP/s, "
      f"MFU {100 * mean('mfu'):.1f}% (second half of the run)")
PY
