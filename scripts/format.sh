#!/usr/bin/env bash
# Format C++ with the repository's .clang-format (clang-format 14+; Debian: apt-get install
# clang-format).
#   scripts/format.sh [FILE...]          format the files in place (default: every tracked
#                                        .cpp/.hpp/.h/.cu/.cuh/.c file)
#   scripts/format.sh --check [FILE...]  change nothing; list the files that are not formatted
#                                        and exit 1 if there are any
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
command -v "$CLANG_FORMAT" >/dev/null ||
  { echo "format.sh: $CLANG_FORMAT not found (Debian: apt-get install clang-format)" >&2; exit 1; }
if [ $# -gt 0 ]; then files=("$@"); else
  mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cu' '*.cuh' '*.c')
fi
if [ $check -eq 0 ]; then
  "$CLANG_FORMAT" -i --style=file "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! "$CLANG_FORMAT" --style=file "$f" | cmp -s - "$f"; then echo "not formatted: $f"; bad=$((bad + 1)); fi
done
[ $bad -eq 0 ] && echo "format.sh: ${#files[@]} files formatted" || { echo "format.sh: $bad of ${#files[@]} files need scripts/format.sh" >&2; exit 1; }
