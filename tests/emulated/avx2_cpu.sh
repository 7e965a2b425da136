#!/usr/bin/env bash
# emulated.avx2_cpu: strata on an x86-64 CPU without AVX-512, emulated. The machines this
# project runs on have AVX-512; clusters and CI machines often do not (AMD EPYC Rome/Milan:
# AVX2 + FMA). QEMU's user-mode emulator (Debian: qemu-user, 7.2+ emulates AVX2 and FMA, not
# AVX-512) runs the same binaries on an emulated AMD EPYC Rome CPU, so every choice made at
# run time from the CPU's features takes its AVX2 branch: the peak probe's ISA, OpenBLAS's
# kernels (Zen), the trainer's MFU. Emulated speed is not real speed: this checks that the
# program picks and measures right, not how fast it is.
#   1. `strata info` under the emulator reports avx2 and no avx512 (the emulation holds), and
#      that the kernels' element-wise loops run the build target's copies, not their
#      x86-64-v4 clones (kernels/cpu/detail.hpp: so step 2 tests those copies);
#   2. the kernel unit tests (reference and finite-difference tests, the peak probe against an
#      FMA loop of every ISA the CPU has) pass, but for one timing test of the host (below);
#   3. `strata train` prints an MFU below 100 % and within 10 % of (its achieved FLOP/s / an
#      independently measured peak): benchmarks/fma_peak.c built for AVX2 + FMA, one core's
#      rate times the cores the trainer's probe used.
# Usage: avx2_cpu.sh STRATA SOURCE_DIR UNIT_KERNELS. Exit 77 (skip) without qemu-x86_64.
set -euo pipefail
strata=$1 root=$2 kernels=$3
if ! command -v qemu-x86_64 >/dev/null; then
  echo "SKIP: qemu-x86_64 not found (Debian: qemu-user; scripts/install-deps.sh installs it)"
  exit 77
fi
cpu=EPYC-Rome
work=$(mktemp -d "${TMPDIR:-/tmp}/strata-avx2.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The programs re-exec themselves once to set OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT (with a
# pthreads OpenBLAS) and OPENBLAS_CORETYPE where unset (kernels/cpu/matmul.hpp); that exec would
# run natively, outside the emulator. Set what they would set, and leave OpenBLAS to pick its
# kernels from the emulated CPU.
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=22
unset OPENBLAS_CORETYPE
# QEMU warns once per CPU feature of the model that it cannot emulate (rdseed, sha-ni, ...).
emu() { qemu-x86_64 -cpu "$cpu" "$@" 2> >(grep -v "TCG doesn't support" >&2); }
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== 1. strata info on an emulated $cpu"
emu "$strata" info >"$work/info.txt"
cat "$work/info.txt"
isa=$(sed -n 's/.*vector instruction sets of this CPU: *//p' "$work/info.txt")
[[ " $isa " == *" avx2 "* ]] || fail "strata info lists '$isa', expected avx2 among them"
[[ "$isa" != *avx512* ]] || fail "the emulated CPU reports AVX-512 ('$isa'): the emulation does not hold"
loops=$(sed -n 's/.*element-wise loops: *//p' "$work/info.txt")
[[ "$loops" == "the build target's"* ]] || fail "strata info says the element-wise loops run '$loops', expected the build target's copies"

echo "== 2. kernel unit tests on the emulated CPU"
# All but one: Peak.MoreThreadsThanCores... compares an oversubscribed probe with one core's
# best of 3 short runs, which emulation on a busy machine can read at half (0.29 vs 0.6
# GFLOP/s seen): a test of the host's scheduling, not of the AVX2 code, and it runs natively.
emu "$kernels" --gtest_brief=1 --gtest_filter=-Peak.MoreThreadsThanCoresReadTheCoresTotalNotAMultiple ||
  fail "kernel unit tests failed on the emulated $cpu"

echo "== 3. the trainer's MFU against an independent FMA loop"
${CC:-cc} -O3 -mavx2 -mfma "$root/benchmarks/fma_peak.c" -o "$work/fma_peak"
core=$(emu "$work/fma_peak")
# The trainer's probe times both cores in step (best of short windows): another busy process
# can hold one of them through every window and halve it, as on any shared machine (the
# trainer then warns and stops printing MFU). Up to 5 runs, the first that agrees counts. The
# FMA loop's rate is a peak too: each attempt measures it again and keeps the highest reading
# (one low reading on a busy machine failed a run whose trainer probe read right).
for attempt in 1 2 3 4 5; do
  if [ "$attempt" -gt 1 ]; then
    again=$(emu "$work/fma_peak")
    core=$(python3 -c "print(max($core, $again))")
  fi
  rm -rf "$work/run"
  emu "$strata" train --config "$root/configs/test_tiny.yaml" --set train.steps=4 --set hardware.threads=2 \
    --set eval.windows=0 --set ckpt.save_at_end=false --set train.out_dir="$work/run" >"$work/train.log" 2>&1 ||
    { tail -20 "$work/train.log"; fail "strata train failed on the emulated $cpu"; }
  grep -E "peak .* GFLOP/s per rank" "$work/train.log" || fail "the trainer did not state its peak"
  python3 - "$work/run/metrics.jsonl" "$work/train.log" "$core" <<'PY' && break
import json, re, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][1:]
log = open(sys.argv[2]).read()
m = re.search(r"on (\d+) of \d+ cores .*shared by the (\d+) ranks", log)
if not m:
    sys.exit("FAIL: no 'on N of M cores ... shared by the R ranks' in the trainer's peak line")
cores, ranks = int(m.group(1)), int(m.group(2))
peak = float(sys.argv[3]) * cores / ranks  # GFLOP/s per rank, independently measured
mfu = statistics.median(s["mfu"] for s in steps)
achieved = statistics.median(s["tflops"] for s in steps) * 1e3
independent = achieved / peak
print(f"achieved {achieved:.3f} GFLOP/s per rank; printed MFU {100 * mfu:.1f} %; FMA loop {float(sys.argv[3]):.3g} "
      f"GFLOP/s per core x {cores} cores / {ranks} ranks = {peak:.3g} -> {100 * independent:.1f} %")
if not 0 < mfu < 1:
    sys.exit(f"printed MFU {100 * mfu:.1f} % is not in (0, 100 %)")
if abs(mfu / independent - 1) > 0.10:
    sys.exit(f"printed MFU {100 * mfu:.1f} % is not within 10 % of {100 * independent:.1f} %")
PY
  [ $attempt -lt 5 ] || fail "the trainer's MFU disagreed with the FMA loop in 5 runs (above)"
done
echo "PASS: strata on an emulated $cpu (AVX2, no AVX-512): ISA detection, kernel tests, MFU"
