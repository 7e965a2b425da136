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
# and DIR.tar.xz of it (binaries and libraries stripped: about 27 MB for sm_80 and sm_90),
# small enough to travel with the repository; scripts/gpu-check.sh unpacks it.
# Usage: scripts/gpu-bundle.sh [DIR]   (default .gpu-bundle; BUILD_DIR picks the build)
# CUDA_ARCHS (default "80;90") sets the architectures of a fresh build ("90": H100/H200 only).
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
  # the machine code in the binary: nvcc stores each cubin's ptxas line ("-arch sm_90")
  echo "cuda_architectures $(strings -n 8 "$out/bin/strata" | grep -o -- '-arch sm_[0-9]*' | sort -u | cut -c7- | tr '\n' ' ')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
} > "$out/BUILD"
strip --strip-unneeded "$out"/bin/* "$out"/lib/*.so* 2>/dev/null || true
tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
echo "gpu-bundle: $(du -sh "$out" | cut -f1) in $out ($(ls "$out/bin" | tr '\n' ' ')); $(du -sh "$out.tar.xz" | cut -f1) in $out.tar.xz"
