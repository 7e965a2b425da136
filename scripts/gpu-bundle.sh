#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh runs into a folder that can be carried to a GPU machine
# that has the NVIDIA driver and CUDA 13 (cuBLAS, cuBLASLt; NCCL from the toolkit or a
# Python wheel) but none of strata's other dependencies (Open MPI, HDF5, Kokkos, OpenBLAS,
# yaml-cpp, ICU, SentencePiece ...):
#   DIR/bin/   strata, cuda_tests, mpi_nccl, mpi_gpu_layouts, bench_cuda_kernels (those built)
#   DIR/lib/   every shared library they load except glibc's and the large CUDA libraries
#              (cuBLAS, cuBLASLt, NCCL) the GPU machine provides; Open MPI's plugins in
#              DIR/lib/openmpi3/ and its help texts in DIR/share/openmpi/
#   DIR/BUILD  the commit, the CUDA architectures and the date
# Usage: scripts/gpu-bundle.sh [DIR]   (default .gpu-bundle; BUILD_DIR picks the build)
# CUDA_ARCHS (default "80;90") sets the architectures of a fresh build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/.gpu-bundle}"
build="${BUILD_DIR:-$root/build}"
targets=(strata cuda_tests mpi_nccl mpi_gpu_layouts bench_cuda_kernels)

STRATA_CMAKE_ARGS="${STRATA_CMAKE_ARGS:-} -DSTRATA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-80;90}" \
  BUILD_DIR="$build" bash "$root/scripts/build.sh" strata
# The GPU programs this build defines (a build configured without CUDA defines none).
available=$(ninja -C "$build" -t targets all | sed 's/:.*//')
wanted=()
for t in "${targets[@]}"; do grep -qx "$t" <<<"$available" && wanted+=("$t"); done
if [ "${#wanted[@]}" -lt 2 ]; then
  echo "gpu-bundle: $build has no CUDA test programs: configure a build with CUDA (nvcc) into another BUILD_DIR" >&2
  exit 1
fi
ninja -C "$build" "${wanted[@]}"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/share"
for t in "${targets[@]}"; do
  for f in "$build/$t" "$build/tests/$t" "$build/benchmarks/$t"; do
    if [ -x "$f" ]; then cp "$f" "$out/bin/"; break; fi
  done
done
# Shared libraries: everything ldd resolves, minus the C library itself (the GPU machine's is
# newer and compatible) and the CUDA libraries that come with the driver or the toolkit there.
skip='/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libcuda|libcublas|libcublasLt|libnccl)\.so'
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -Ev "$skip" | while read -r lib; do cp -L "$lib" "$out/lib/"; done
# Open MPI loads its components at run time (singleton runs need ess, pmix, btl self/vader ...).
ompi_plugins=$(dirname "$(readlink -f "$(ldconfig -p | awk '/libmpi.so.40 /{print $NF; exit}')")")/openmpi/lib/openmpi3
[ -d "$ompi_plugins" ] || ompi_plugins=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
cp -rL "$ompi_plugins" "$out/lib/openmpi3"
cp -rL /usr/share/openmpi "$out/share/openmpi" 2>/dev/null || true
{
  echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cuda_architectures $(awk -F= '/^CMAKE_CUDA_ARCHITECTURES:/{print $2}' "$build/CMakeCache.txt")"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
} > "$out/BUILD"
echo "gpu-bundle: $(du -sh "$out" | cut -f1) in $out ($(ls "$out/bin" | tr '\n' ' '))"
