# Shared by the CLI tests: run strata and check its exit code and message.
# Needs $strata (the binary) and counts failures in $failures.
failures=0

# expect_error NAME SUBSTRING ARGS...: non-zero exit (no crash, no hang) and exactly one line
# of error containing SUBSTRING.
expect_error() {
  local name="$1" want="$2"; shift 2
  local out rc
  out=$(timeout 60 "$strata" "$@" 2>&1 >/dev/null); rc=$?
  local lines; lines=$(printf '%s\n' "$out" | grep -c .)
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
    echo "FAIL $name: exit code $rc (want 1..123)"; failures=$((failures + 1))
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: message lacks '$want': $out"; failures=$((failures + 1))
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL $name: $lines lines of error, want one: $out"; failures=$((failures + 1))
  else
    echo "ok   $name: $out"
  fi
}
