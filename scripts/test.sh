#!/usr/bin/env bash
# Runs the tap suite and ends with one plain summary line ("tests: N passed, N failed, N skipped").
# Exit status is tap's.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1)
num() { grep -oE "$1: [0-9]+" <<<"$summary" | grep -oE '[0-9]+' || echo 0; }
echo "tests: $(num pass) passed, $(num fail) failed, $(num skip) skipped"
[ -n "$summary" ] || { echo "test.sh: tap printed no summary" >&2; [ "$rc" = 0 ] && rc=1; }
exit "$rc"
