#!/usr/bin/env bash
# The outside services that scrapepool's integration tests need, on free loopback ports.
#
#   scripts/services.sh start   start ZooKeeper (standalone) and Apache Kafka (one KRaft node),
#                               write .services/env
#   scripts/services.sh stop    stop what `start` started, remove its temporary state
#   scripts/services.sh env     print .services/env (after `start`)
#
# .services/env exports, for `source`:
#   SCRAPEPOOL_ZK, SCRAPEPOOL_KAFKA          host:port of the running services
#   SCRAPEPOOL_KAFKA_CTL, SCRAPEPOOL_KAFKA_DIR  `"$CTL" stop|restart|pause|resume "$DIR"`: a
#                                            test's hook to take the broker away and back
#   SCRAPEPOOL_ZK_PID                        the ZooKeeper server's pid (SIGSTOP it for expiry)
#   SCRAPEPOOL_PROMETHEUS_BIN, SCRAPEPOOL_PROMTOOL_BIN  Prometheus 3.16 and promtool 3.16, the
#                                            reference (scripts/go-tools.sh builds them)
#   SCRAPEPOOL_DNSMASQ_BIN, SCRAPEPOOL_NODE_EXPORTER_BIN,
#   SCRAPEPOOL_VICTORIA_METRICS_BIN, SCRAPEPOOL_CHROMIUM_BIN
#                                            binaries the tests start their own instances of
#   SCRAPEPOOL_REQUIRE_SERVICES=1            tests fail, rather than skip, when one is missing
set -eEuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="$root/.services"
envfile="$state/env"
zk_start_timeout_s="${ZK_START_TIMEOUT_S:-60}"

die() { echo "services.sh: $*" >&2; exit 1; }

free_port() { python3 "$here/free-port.py"; }

port_open() {
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$1" 2>/dev/null
}

# ZooKeeper's four-letter word `ruok` answers `imok` once the server serves.
zk_ok() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)
s.sendall(b"ruok")
s.settimeout(1)
sys.exit(0 if s.recv(4) == b"imok" else 1)
PY
}

start_zookeeper() {
  local dir="$1"
  local port
  port="$(free_port)"
  mkdir -p "$dir/conf" "$dir/data"
  cat >"$dir/conf/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
CFG
  # Debian's zookeeper 3.8 logs through Log4j 1 (reload4j); log to the state dir, not /var/log.
  cat >"$dir/conf/log4j.properties" <<'LOG'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
LOG
  [ -f /usr/share/java/zookeeper.jar ] || die "/usr/share/java/zookeeper.jar missing (scripts/install-deps.sh installs zookeeper)"
  # zookeeper.jar's manifest names its dependencies' jars but no SLF4J binding: add
  # Debian's Log4j 1 binding when present (else ZooKeeper logs nothing, which is harmless).
  local cp="$dir/conf:/usr/share/java/zookeeper.jar"
  if [ -f /usr/share/java/slf4j-log4j12.jar ] && [ -f /usr/share/java/log4j-1.2.jar ]; then
    cp="$cp:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
  fi
  setsid java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dzookeeper.admin.enableServer=false -Dlog4j.configuration="file:$dir/conf/log4j.properties" \
    -cp "$cp" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg" \
    >"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  echo "$port" >"$dir/port"
  local deadline=$((SECONDS + zk_start_timeout_s))
  until zk_ok "$port"; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -n 40 "$dir/server.log" >&2; die "ZooKeeper exited during start-up"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 40 "$dir/server.log" >&2; die "ZooKeeper not ready after ${zk_start_timeout_s}s"; }
    sleep 0.2
  done
}

stop_pid_file() {
  local file="$1"
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  kill -CONT "$pid" 2>/dev/null || true # a test may have left it stopped
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
}

stop() {
  [ -f "$state/rundir" ] || { rm -f "$envfile"; return 0; }
  local run
  run="$(cat "$state/rundir")"
  if [ -d "$run/kafka" ]; then "$here/kafka.sh" stop "$run/kafka" || true; fi
  stop_pid_file "$run/zookeeper/pid"
  # Keep the last run's logs for a post-mortem; the data goes.
  mkdir -p "$state/logs"
  cp "$run"/zookeeper/server.log "$state/logs/zookeeper.log" 2>/dev/null || true
  cp "$run"/kafka/server.log "$state/logs/kafka.log" 2>/dev/null || true
  rm -rf "$run"
  rm -f "$state/rundir" "$envfile"
  echo "services.sh: stopped"
}

bin_or_empty() { command -v "$1" 2>/dev/null || true; }
# A binary built by scripts/go-tools.sh, or empty when it is not built (never builds here).
go_tool_or_empty() {
  local path
  path="$(sed -n "s/^  \"$1 [^ ]* \(v[^ ]*\)\"$/\1/p" "$here/go-tools.sh")"
  path="${SCRAPEPOOL_CACHE:-$HOME/.cache/scrapepool}/go/$1-$path/$1"
  if [ -x "$path" ]; then echo "$path"; fi
}

start() {
  if [ -f "$state/rundir" ]; then
    echo "services.sh: stopping the services of an earlier start" >&2
    stop
  fi
  mkdir -p "$state"
  local run
  run="$(mktemp -d "${TMPDIR:-/tmp}/scrapepool-services.XXXXXX")"
  echo "$run" >"$state/rundir"
  # Whatever fails below, leave nothing running.
  trap 'stop >/dev/null 2>&1 || true' ERR

  local t0=$SECONDS
  start_zookeeper "$run/zookeeper" &
  local zk_job=$!
  mkdir -p "$run/kafka"
  local kafka
  kafka="$("$here/kafka.sh" start "$run/kafka")"
  wait "$zk_job" || die "ZooKeeper did not start"
  trap - ERR

  cat >"$envfile.tmp" <<ENV
# Written by scripts/services.sh start; removed by scripts/services.sh stop.
export SCRAPEPOOL_ZK=127.0.0.1:$(cat "$run/zookeeper/port")
export SCRAPEPOOL_ZK_PID=$(cat "$run/zookeeper/pid")
export SCRAPEPOOL_KAFKA=$kafka
export SCRAPEPOOL_KAFKA_CTL=$here/kafka.sh
export SCRAPEPOOL_KAFKA_DIR=$run/kafka
export SCRAPEPOOL_PROMETHEUS_BIN=$(go_tool_or_empty prometheus)
export SCRAPEPOOL_PROMTOOL_BIN=$(go_tool_or_empty promtool)
export SCRAPEPOOL_DNSMASQ_BIN=$(PATH="$PATH:/usr/sbin:/sbin" bin_or_empty dnsmasq)
export SCRAPEPOOL_NODE_EXPORTER_BIN=$(bin_or_empty prometheus-node-exporter)
export SCRAPEPOOL_VICTORIA_METRICS_BIN=$(bin_or_empty victoria-metrics)
export SCRAPEPOOL_CHROMIUM_BIN=$(bin_or_empty chromium)
export SCRAPEPOOL_REQUIRE_SERVICES=1
ENV
  mv "$envfile.tmp" "$envfile"
  echo "services.sh: ZooKeeper 127.0.0.1:$(cat "$run/zookeeper/port"), Kafka $kafka (in $((SECONDS - t0))s); env in $envfile"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
  [ -f "$envfile" ] || die "no $envfile: run scripts/services.sh start first"
  cat "$envfile"
  ;;
*) die "usage: services.sh start|stop|env" ;;
esac
