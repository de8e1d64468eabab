#!/usr/bin/env bash
# Runs every cargo-fuzz target coverage-guided, one after the other, for N seconds each
# (default 600), then minimizes each corpus in place (`cargo fuzz cmin`).
#
#   fuzz/run-all.sh [seconds] [target...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs go into
# fuzz/corpus/<target>/ (review and commit them after cmin); crashes into
# fuzz/artifacts/<target>/ — turn each into a regression test (see README.md, "Fuzzing").
# Each run's libFuzzer output is kept in ${FUZZ_LOG_DIR:-fuzz/logs}/<target>.log; the last
# "DONE" line there carries executions (#N), coverage (cov:, ft:) and corpus size (corp:).
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
logs="${FUZZ_LOG_DIR:-logs}"
mkdir -p "$logs"

for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    # The core has no `unsafe`; AddressSanitizer halves the speed of the slow rebalance
    # target for nothing it could find there, so that one runs without it.
    sanitizer=address
    if [ "$target" = rebalance ]; then sanitizer=none; fi
    cargo +nightly fuzz build -s "$sanitizer" "$target"
    # -jobs=1: one worker in a child process, so a crash is recorded and the run goes on;
    # its output lands in fuzz-0.log, moved next to the others.
    cargo +nightly fuzz run -s "$sanitizer" "$target" -- -max_total_time="$seconds" -jobs=1 -print_final_stats=1 \
        >"$logs/$target.run.log" 2>&1 || echo "$target: libFuzzer exited with $? (see the log)"
    if [ -f fuzz-0.log ]; then
        mv fuzz-0.log "$logs/$target.log"
    fi
    grep -E "DONE|Done [0-9]+ runs|stat::" "$logs/$target.log" | tail -n 12 || true
    cargo +nightly fuzz cmin -s "$sanitizer" "$target" >"$logs/$target.cmin.log" 2>&1
    echo "$target corpus after cmin: $(ls "corpus/$target" | wc -l) files, $(du -sb "corpus/$target" | cut -f1) bytes"
    ls "artifacts/$target" 2>/dev/null | sed "s/^/$target artifact: /" || true
done
