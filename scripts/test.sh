#!/usr/bin/env bash
# THE test command: installs what the tests need, starts the outside services on free
# loopback ports, runs every test of the workspace, stops the services, and exits with
# cargo's status. Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p scrapepool-core`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/install-deps.sh

# A one-shot build gains nothing from incremental compilation and it costs time and disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/services.sh start
trap 'scripts/services.sh stop || true' EXIT
# shellcheck source=/dev/null
source .services/env

# Third-party fixtures (the OpenMetrics conformance suite) are not in the repository; say
# plainly when they are absent (the test then skips, unless SCRAPEPOOL_REQUIRE_CONFORMANCE=1).
suite="${SCRAPEPOOL_SHARED:-$root/../shared}/fixtures/openmetrics-conformance"
if [ ! -d "$suite" ]; then
  echo "test.sh: SKIPPED: the OpenMetrics conformance suite is not at $suite (third-party data, not in this repository; set SCRAPEPOOL_SHARED to the folder holding fixtures/openmetrics-conformance)"
fi

status=0
# Formatting first: it takes a second and a diff is cheaper to read now than in review.
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check || status=$?
fi
# --all-targets: libs, bins, integration tests, examples, and benches (run once as tests).
if [ "$status" -eq 0 ]; then
  cargo test --workspace --all-targets "$@" || status=$?
fi
# --all-targets leaves out doc tests; they run here.
if [ "$status" -eq 0 ]; then
  cargo test --workspace --doc "$@" || status=$?
fi
# The deterministic simulation: 100 seeds of a 5-scraper, 500-target, 30-minute pool, then
# 20 seeds of crashes and Kafka outages against a 100-record memory queue with a disk spool,
# and 10 more with the spool written through (release build; only for the whole test run,
# not for `scripts/test.sh -p ...`).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  scripts/sim-sweep.sh 0 100 || status=$?
fi
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  scripts/sim-sweep.sh 0 20 --spool --queue-records-max 100 --faults crash,partition --fault-every 20s || status=$?
fi
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  scripts/sim-sweep.sh 20 30 --spool --spool-write-through --queue-records-max 100 --faults crash,partition --fault-every 20s || status=$?
fi
exit "$status"
