#!/usr/bin/env bash
# Runs the tap suite and ends with the failed tests (their `not ok` lines, with the file each is in) and one plain
# summary line ("tests: N passed, N failed, N skipped"), so the tail of a CI log names what failed.
# Exit status is tap's.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1)
num() { grep -oE "$1: [0-9]+" <<<"$summary" | grep -oE '[0-9]+' || echo 0; }
# every `not ok` line under the top-level `# Subtest: <file>` it belongs to (the innermost ones carry the assertion)
failed=$(awk '/^# Subtest: /{file=substr($0,12)} /^ *not ok /{print file ": " $0}' "$log")
if [ -n "$failed" ]; then
  echo "failed:"
  head -n 60 <<<"$failed"
fi
echo "tests: $(num pass) passed, $(num fail) failed, $(num skip) skipped"
[ -n "$summary" ] || { echo "test.sh: tap printed no summary" >&2; [ "$rc" = 0 ] && rc=1; }
exit "$rc"
