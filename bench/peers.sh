#!/usr/bin/env bash
# One command, on a fresh machine: scrapepool vs vmagent vs Prometheus agent, side by side.
#
#   bench/peers.sh [peers.py options]     e.g. --duration-s 60 --loads node-exporter
#
# Installs the peers (scripts/go-tools.sh builds vmagent v1.151.0 and Prometheus 3.16 from
# their Go modules, cached by version; scripts/install-deps.sh brings Debian's
# victoria-metrics, whose vmagent 1.79.5 is a row of its own), builds scrapepool --release, starts ZooKeeper and Kafka (scripts/services.sh) unless
# .services/env already names running ones, runs bench/peers.py, and stops what it started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

scripts/install-deps.sh
if ! command -v cargo >/dev/null; then
  echo "peers.sh: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
vmagent="$(scripts/go-tools.sh vmagent)"
prometheus="$(scripts/go-tools.sh prometheus)"
cargo build --release --bin scrapepool
bin="${CARGO_TARGET_DIR:-$root/target}/release/scrapepool"

started=0
if [ -f .services/env ]; then
  # shellcheck disable=SC1091
  source .services/env
  if ! python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "${SCRAPEPOOL_KAFKA##*:}" 2>/dev/null; then
    scripts/services.sh stop || true
    unset SCRAPEPOOL_KAFKA
  fi
fi
if [ -z "${SCRAPEPOOL_KAFKA:-}" ]; then
  scripts/services.sh start
  started=1
  # shellcheck disable=SC1091
  source .services/env
fi
cleanup() { if [ "$started" = 1 ]; then scripts/services.sh stop || true; fi; }
trap cleanup EXIT

python3 "$here/peers.py" --scrapepool "$bin" --vmagent "$vmagent" --prometheus "$prometheus" \
  --zookeeper "$SCRAPEPOOL_ZK" --kafka "$SCRAPEPOOL_KAFKA" "$@"
