#!/usr/bin/env bash
# The simulation sweep: `scripts/sim-sweep.sh [FIRST LAST] [extra sim args]` runs seeds
# FIRST..LAST (default 0..100) of the 5-scraper, 500-target, 30-simulated-minute pool in a
# release build, split over the machine's cores. Exits non-zero if any seed breaks an
# invariant; each failing seed prints the one line that reproduces it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
first="${1:-0}"; last="${2:-100}"; shift $(( $# >= 2 ? 2 : $# )) || true
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/scrapepool"
jobs="$(nproc)"
span=$(( (last - first + jobs - 1) / jobs ))
pids=(); logs=()
for ((i = 0; i < jobs; i++)); do
  a=$(( first + i * span )); b=$(( a + span < last ? a + span : last ))
  [ "$a" -lt "$b" ] || continue
  log="$(mktemp)"; logs+=("$log")
  "$bin" sim --seeds "$a..$b" "$@" >"$log" 2>&1 & pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
passed=0; failed=0
for log in "${logs[@]}"; do
  grep -v '^sim:' "$log" || true
  p=$(sed -n 's/^sim: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$log"); f=$(sed -n 's/^sim: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$log")
  passed=$(( passed + ${p:-0} )); failed=$(( failed + ${f:-1} ))
  rm -f "$log"
done
echo "sim sweep: $passed passed, $failed failed"
exit "$status"
