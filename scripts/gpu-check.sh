#!/usr/bin/env bash
# One command for a GPU machine (NVIDIA driver, CUDA 13, no network): checks the GPU backend
# and measures it, within about 8 minutes, writing a summary.
#   1. environment: nvidia-smi, the libraries found, `strata info`
#   2. the `cuda` test suite (every kernel against the CPU reference, the runtime, the GPU
#      engine against the CPU model) and the NCCL test on one rank
#   3. kernel benchmarks: GEMMs at LLaMA-2 7B shapes, flash attention, AdamW (TFLOP/s or GB/s
#      and % of the device's peak)
#   4. training benchmark: the ~1B LLaMA-style model (configs/gpu_check_1b.yaml), 50 steps,
#      tokens/s and MFU of steps 11-50
# Programs come from a bundle made by scripts/gpu-bundle.sh and carried along (default
# .gpu-bundle), or from a build dir (BUILD_DIR) — building here when neither exists and the
# dependencies are installed (scripts/install-deps.sh). Usage:
#   scripts/gpu-check.sh [--out DIR] [--bundle DIR] [--quick]
# --quick skips the long benchmarks (tests only). The summary is DIR/gpu-check-summary.md
# (default: $OUT when set, else runs/gpu-check); logs of every step beside it. Exit status:
# 0 when every test passed and every step ran, 1 otherwise.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/runs/gpu-check}"
bundle="$root/.gpu-bundle"
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --bundle) bundle="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "gpu-check: unknown argument '$1' (expected --out DIR, --bundle DIR, --quick)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
summary="$out/gpu-check-summary.md"
status=0
t0=$(date +%s)
note() { echo "$*" | tee -a "$summary"; }
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }

# ---- where the programs and libraries are ----------------------------------------------
# A bundle carried as DIR.tar.xz (scripts/gpu-bundle.sh) is unpacked beside it first.
if [ ! -x "$bundle/bin/strata" ] && [ -f "$bundle.tar.xz" ]; then
  tar -C "$(dirname "$bundle")" -xJf "$bundle.tar.xz" || { echo "gpu-check: cannot unpack $bundle.tar.xz" >&2; exit 1; }
fi
if [ -x "$bundle/bin/strata" ]; then
  bin="$bundle/bin"
  export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Open MPI from the bundle: its plugins and help texts, and a singleton that starts no daemon.
  export OMPI_MCA_mca_base_component_path="$bundle/lib/openmpi3" OPAL_PKGDATADIR="$bundle/share/openmpi"
  export OMPI_MCA_ess_singleton_isolated=1
else
  build="${BUILD_DIR:-$root/build}"
  if [ ! -x "$build/tests/cuda_tests" ]; then
    echo "gpu-check: no bundle at $bundle and no CUDA build at $build: building" >&2
    STRATA_CMAKE_ARGS="${STRATA_CMAKE_ARGS:-} -DSTRATA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native" \
      BUILD_DIR="$build" bash scripts/build.sh strata cuda_tests bench_cuda_kernels mpi_nccl || exit 1
  fi
  bin="$out/bin"
  mkdir -p "$bin"
  for t in strata tests/cuda_tests tests/mpi_nccl tests/mpi_gpu_layouts benchmarks/bench_cuda_kernels; do
    [ -x "$build/$t" ] && ln -sf "$build/$t" "$bin/$(basename "$t")"
  done
fi
# cuBLAS/cuBLASLt and NCCL from the machine: the CUDA toolkit, else the Python wheels
# (nvidia-cublas, nvidia-nccl-cu13) that PyTorch images carry.
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
have_lib() {  # on the loader's cache or in a folder of LD_LIBRARY_PATH
  ldconfig -p 2>/dev/null | grep -q "$1" && return 0
  local d
  for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/$1" ] && return 0; done
  return 1
}
for lib in libnccl.so.2 libcublasLt.so.13 libcublas.so.13; do
  if ! have_lib "$lib"; then
    found=$(find / -xdev -name "$lib" -path "*nvidia*" 2>/dev/null | head -1)
    [ -n "$found" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$found")"
  fi
done
export LD_LIBRARY_PATH
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

: > "$summary"
note "# strata GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note ""
note "## Environment"
note '```'
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$summary"
[ -f "$bundle/BUILD" ] && cat "$bundle/BUILD" | tee -a "$summary"
missing=$(ldd "$bin/strata" "$bin/cuda_tests" 2>/dev/null | grep "not found" | sort -u)
[ -n "$missing" ] && { echo "missing libraries:"; echo "$missing"; status=1; } | tee -a "$summary"
timeout 60 "$bin/strata" info > "$out/info.log" 2>&1
grep -iE "cuda|device|nccl|cublas|driver" "$out/info.log" | head -12 | tee -a "$summary"
note '```'

# ---- 2. tests -------------------------------------------------------------------------------
note ""
note "## cuda tests ($(elapsed))"
if timeout 240 "$bin/cuda_tests" --gtest_output="xml:$out/cuda_tests.xml" > "$out/cuda_tests.log" 2>&1; then
  note "cuda_tests: no failures"
else
  status=1
  note "cuda_tests: FAILED (exit $?); failures:"
  grep -E "^\[  FAILED  \]|Failure|error" "$out/cuda_tests.log" | head -40 | tee -a "$summary"
fi
# gtest's totals: passed, skipped (each skip says why: no device, too few GPUs) and failed.
grep -E "^\[==========\] [0-9]+ tests? from|^\[  (PASSED|SKIPPED|FAILED)  ?\] [0-9]+ tests?" "$out/cuda_tests.log" |
  tee -a "$summary"
if [ -x "$bin/mpi_nccl" ]; then
  if timeout 120 "$bin/mpi_nccl" > "$out/mpi_nccl.log" 2>&1; then note "mpi_nccl (1 rank): passed"
  else status=1; note "mpi_nccl (1 rank): FAILED"; grep -E "FAILED|Failure|error" "$out/mpi_nccl.log" | head -20 | tee -a "$summary"; fi
fi

# ---- 3. kernel benchmarks ---------------------------------------------------------------
if [ "$quick" = 0 ] && [ -x "$bin/bench_cuda_kernels" ]; then
  note ""
  note "## Kernel benchmarks ($(elapsed))"
  if timeout 180 "$bin/bench_cuda_kernels" --benchmark_min_time=0.2 --benchmark_out="$out/bench_cuda_kernels.json" \
       --benchmark_out_format=json > "$out/bench_cuda_kernels.log" 2>&1 && [ -s "$out/bench_cuda_kernels.json" ]; then
    python3 - "$out/bench_cuda_kernels.json" <<'PY' | tee -a "$summary"
import json, sys
d = json.load(open(sys.argv[1]))
print("| benchmark | time (ms) | TFLOP/s | GB/s | % of peak |")
print("|---|---:|---:|---:|---:|")
for b in d["benchmarks"]:
    if b.get("run_type") == "aggregate" or "error_message" in b:
        continue
    ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1, "s": 1e3}[b["time_unit"]]
    f = lambda k: ("%.1f" % b[k]) if k in b else ""
    pct = b.get("pct_peak")  # of the bf16 peak (GEMM, attention) or the memory bandwidth (AdamW)
    print("| %s | %.3f | %s | %s | %s |" % (b["name"], ms, f("TFLOP/s"), f("GB/s"), "" if pct is None else "%.1f" % pct))
PY
  else
    status=1
    note "bench_cuda_kernels: FAILED"; tail -20 "$out/bench_cuda_kernels.log" | tee -a "$summary"
  fi
fi

# ---- 4. training benchmark --------------------------------------------------------------
if [ "$quick" = 0 ]; then
  note ""
  note "## Training: ~1B LLaMA-style model, one GPU, 50 steps ($(elapsed))"
  rm -rf "$out/train-1b"
  if timeout 300 "$bin/strata" train --config configs/gpu_check_1b.yaml --set train.out_dir="$out/train-1b" \
       > "$out/train-1b.log" 2>&1; then
    python3 - "$out/train-1b/metrics.jsonl" <<'PY' | tee -a "$summary"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step_ms"' in l]
w = [s for s in steps if s["step"] > 10] or steps
mean = lambda k: sum(s[k] for s in w) / len(w)
print("steps %d-%d: %.0f tokens/s, %.1f ms/step, %.1f TFLOP/s, MFU %.1f%%; loss %.3f -> %.3f"
      % (w[0]["step"], w[-1]["step"], mean("tokens_per_s"), mean("step_ms"), mean("tflops"),
         100 * mean("mfu"), steps[0]["loss"], steps[-1]["loss"]))
PY
    grep -m1 -E "peak .* per rank" "$out/train-1b.log" | tee -a "$summary"
  else
    status=1
    note "training benchmark: FAILED"; tail -20 "$out/train-1b.log" | tee -a "$summary"
  fi
fi

note ""
note "gpu-check: finished in $(elapsed), status $status (logs in $out)"
exit $status
