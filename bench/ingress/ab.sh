#!/usr/bin/env bash
# Before/after of one ingress change: the kdp rows of `npm run bench:ingress` run alternately in two trees
# (e.g. a `git worktree` of the commit before the change, and this tree), then the median CPU per request (and
# its user part) of each tree and row. CPU per request is the figure to compare: req/s moves with whatever else
# shares the cores.
#   bash bench/ingress/ab.sh BEFORE_TREE AFTER_TREE [http|https|https-new|h2] [rounds, default 4]
# Each tree needs its node_modules (a symlink to this tree's is enough when the lock files match).
set -euo pipefail
before=${1:?before tree}
after=${2:?after tree}
proto=${3:-http}
rounds=${4:-4}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for tree in "$before" "$after"; do
    label=$([ "$tree" = "$before" ] && echo before || echo after)
    run=$( (cd "$tree" && npm run --silent bench:ingress -- --only kdp --protocols "$proto" --reps 1 --duration 5 \
      --warmup 1 2>&1) || true)
    # a run that failed (a port taken, a target that did not start) is reported and left out of the medians
    if grep -q '^rep' <<<"$run"; then
      grep '^rep' <<<"$run" | sed "s/^/$label /" | tee -a "$out"
    else
      echo "$label: run $i failed:" >&2
      tail -n 5 <<<"$run" >&2
    fi
  done
done
# "before rep 1 kdp ingress, 1 worker: ... cpu 42.1 us/req (user 22.5, sys 19.6)": medians per tree and row
awk '
  { label = $1; row = $0; sub(/^[a-z]+ rep [0-9]+ /, "", row); sub(/:.*/, "", row)
    match($0, /cpu [0-9.]+/); cpu = substr($0, RSTART + 4, RLENGTH - 4)
    match($0, /user [0-9.]+/); user = substr($0, RSTART + 5, RLENGTH - 5)
    key = label " | " row; n[key]++; c[key, n[key]] = cpu; u[key, n[key]] = user }
  function median(arr, key, k,   i, j, t, v) {
    for (i = 1; i <= k; i++) v[i] = arr[key, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }
  END { for (key in n) printf "%s: CPU us/req median %.1f (user %.1f), %d runs\n", key, median(c, key, n[key]), median(u, key, n[key]), n[key] }
' "$out" | sort
