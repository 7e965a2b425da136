#!/usr/bin/env bash
# The CLI's help and info commands work, and `strata train` runs without mpirun and under
# `mpirun -np 1`, writing metrics.jsonl.
set -euo pipefail
strata="$1"; src="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$strata" --help | grep -q "train"
"$strata" train --help | grep -q -- "--config"
"$strata" info >"$tmp/info.txt"
cat "$tmp/info.txt"
for word in Kokkos BLAS MPI HDF5 CUDA; do grep -q "$word" "$tmp/info.txt"; done

"$strata" train --config "$src/configs/test_tiny.yaml" --set train.steps=3 --set "train.out_dir=$tmp/plain"
# three step lines and the validation at the end
test "$(grep -c '"lr"' "$tmp/plain/metrics.jsonl")" -eq 3
test "$(grep -c '"valid_ppl"' "$tmp/plain/metrics.jsonl")" -eq 1
mpirun -np 1 "$strata" train --config "$src/configs/test_tiny.yaml" --set train.steps=3 \
  --set "train.out_dir=$tmp/mpirun"
test "$(grep -c '"lr"' "$tmp/mpirun/metrics.jsonl")" -eq 3
# The same seed gives the same losses with and without mpirun.
diff <(grep -o '"loss": [0-9.]*' "$tmp/plain/metrics.jsonl") <(grep -o '"loss": [0-9.]*' "$tmp/mpirun/metrics.jsonl")
echo "cli commands ok"
