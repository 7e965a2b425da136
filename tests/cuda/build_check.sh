#!/usr/bin/env bash
# What a CUDA build promises on a machine without a GPU (label unit, runs in CI):
#   1. every CUDA program carries machine code for each configured architecture (CI: sm_80 for
#      A100 and sm_90 for H100/H200);
#   2. `strata train` with hardware.device: cuda ends with one clear line and a non-zero exit,
#      on one rank and on two (no hang), naming why no GPU can be used;
#   3. what the CUDA backend does not run (config/capabilities.cpp) is refused before anything
#      starts, naming the key; pipeline layouts and the sequence-length warm-up are not refused,
#      and --dry-run plans a GPU job.
# On a machine with a GPU, part 2 is skipped (training would start).
# usage: build_check.sh STRATA_BINARY SOURCE_DIR CUDA_TESTS_BINARY "CMAKE_CUDA_ARCHITECTURES"
set -uo pipefail
strata="$1"; src="$2"; cuda_tests="$3"; configured="${4:-80;90}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source "$src/tests/cli/lib.bash"
# Machine code per architecture: cuobjdump where the toolkit has it; otherwise the ptxas
# command line that nvcc stores beside each cubin in the fat binary ("-arch sm_80").
list_archs() {
  if command -v cuobjdump >/dev/null; then cuobjdump --list-elf "$1" 2>/dev/null | grep -o 'sm_[0-9]*'
  else strings -n 8 "$1" | grep -o -- '-arch sm_[0-9]*' | grep -o 'sm_[0-9]*'; fi | sort -u | tr '\n' ' '
}
for bin in "$strata" "$cuda_tests"; do
  archs=$(list_archs "$bin")
  for arch in ${configured//;/ }; do
    arch=${arch%%-*}; arch=${arch%a}  # "90a-real" -> 90; "native" and "all" name no fixed one
    [[ "$arch" =~ ^[0-9]+$ ]] || continue
    want="sm_$arch"
    if grep -qw "$want" <<<"$archs"; then echo "ok   $(basename "$bin") has $want code ($archs)"
    else echo "FAIL $(basename "$bin"): no $want code (found: ${archs:-none})"; failures=$((failures + 1)); fi
  done
done

good="$src/configs/test_tiny.yaml"
# One head of 64: the GPU attention kernel's head sizes are 64 and 128.
cuda=(--set hardware.device=cuda --set model.num_heads=1 --set train.out_dir="$tmp/run")
if "$strata" info 2>/dev/null | grep -q "GPUs .*device(s)"; then
  echo "skip no-gpu cases: this machine has a GPU"
else
  expect_error no-gpu "CUDA" train --config "$good" "${cuda[@]}"
  out=$(timeout 120 mpiexec -n 2 --oversubscribe "$strata" train --config "$good" "${cuda[@]}" 2>&1); rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q "CUDA" <<<"$out"; then echo "ok   no-gpu-2-ranks: exit $rc"
  else echo "FAIL no-gpu-2-ranks: exit $rc: $out"; failures=$((failures + 1)); fi
fi
expect_error gpu-head-size "head size 32" train --config "$good" --set hardware.device=cuda --set model.num_heads=2 \
  --set train.out_dir="$tmp/run"
expect_error gpu-bf16-reduce-on-cpu "grad_reduce_dtype: bf16" train --config "$good" --set parallel.grad_reduce_dtype=bf16
for extra in "--set train.seq_len_warmup=1000" "--set parallel.pp=2" \
             "--set parallel.pp=2 --set parallel.schedule=interleaved_1f1b --set parallel.virtual_stages=2 --set parallel.num_microbatches=2 --set model.num_layers=4"; do
  # shellcheck disable=SC2086
  if "$strata" train --config "$good" "${cuda[@]}" $extra --dry-run >"$tmp/dry.txt" 2>&1 && grep -q "cuda bf16" "$tmp/dry.txt"
  then echo "ok   dry-run: cuda $extra"
  else echo "FAIL dry-run: cuda $extra: $(cat "$tmp/dry.txt")"; failures=$((failures + 1)); fi
done

if [ $failures -ne 0 ]; then echo "$failures case(s) failed"; exit 1; fi
echo "the CUDA build carries code for $configured and the GPU path fails clearly where it cannot run"
