#!/usr/bin/env bash
# lint.format: every tracked C++ file is as scripts/format.sh leaves it. The .clang-format is
# written for clang-format 14 (Debian 12's, installed by scripts/install-deps.sh); another
# major version formats some constructs differently, so there the test is skipped (exit 77)
# rather than failing on the tool.
#   tests/lint/format.sh SOURCE_DIR
set -euo pipefail
version=$(clang-format --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' || true)
if [ "$version" != 14 ]; then
  echo "lint.format: skipped: needs clang-format 14, found '${version:-none}'"
  exit 77
fi
cd "$1"
[ -d .git ] || [ -f .git ] || { echo "lint.format: skipped: $1 is not a git checkout (the file list is git's)"; exit 77; }
bash scripts/format.sh --check
