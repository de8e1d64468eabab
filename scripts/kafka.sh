#!/usr/bin/env bash
# One Apache Kafka 4.x broker for the tests: KRaft, combined broker + controller, node 1,
# on free loopback ports, all state under one directory.
#
#   scripts/kafka.sh fetch            jars into the cache (Maven, once); prints the libs dir
#   scripts/kafka.sh start DIR        format DIR, start the broker, wait until it serves;
#                                     prints the bootstrap address (127.0.0.1:PORT)
#   scripts/kafka.sh stop DIR         stop the broker (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh restart DIR      start it again on the same ports with the same data
#   scripts/kafka.sh pause|resume DIR SIGSTOP / SIGCONT the broker (an outage without a restart)
#
# Tests reach this through SCRAPEPOOL_KAFKA_CTL and SCRAPEPOOL_KAFKA_DIR (scripts/services.sh).
# Environment: KAFKA_VERSION (default: the pom's), SCRAPEPOOL_CACHE (default ~/.cache/scrapepool),
# KAFKA_HEAP (default -Xmx512m), KAFKA_START_TIMEOUT_S (default 90).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
version="${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")}"
cache="${SCRAPEPOOL_CACHE:-$HOME/.cache/scrapepool}/kafka-$version"
libs="$cache/libs"
heap="${KAFKA_HEAP:--Xmx512m -Xms128m}"
start_timeout_s="${KAFKA_START_TIMEOUT_S:-90}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

free_port() { python3 "$here/free-port.py"; }

fetch() {
  # The .complete marker is written last, so an interrupted download is done again.
  if [ -f "$cache/.complete" ]; then return 0; fi
  # Several checkouts may share the cache: one fetches, the others wait for it.
  mkdir -p "$cache"
  exec 9>"$cache.lock"
  flock 9
  if [ -f "$cache/.complete" ]; then
    exec 9>&-
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (scripts/install-deps.sh installs it)"
  echo "kafka.sh: fetching Apache Kafka $version jars into $libs" >&2
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -B -q -f "$pom" -Dkafka.version="$version" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2 \
    || die "mvn could not fetch Apache Kafka $version (see above)"
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing in $libs"
  touch "$cache/.complete"
  exec 9>&-
}

# Sets java_cmd to the java command line for DIR: heap, the cached classpath (a literal
# `libs/*`, which java expands) and the state dir's log4j config.
java_cmd=()
set_java_cmd() {
  local dir="$1"
  local heap_opts
  read -r -a heap_opts <<<"$heap"
  java_cmd=(java "${heap_opts[@]}" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" "-Dkafka.logs.dir=$dir/logs"
    -cp "$libs/*")
}

write_config() {
  local dir="$1" port="$2" cport="$3"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$dir/log4j2.properties" <<'LOG'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
# Start-up and shutdown lines ("Kafka Server started" is what `launch` waits for).
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
LOG
}

launch() {
  local dir="$1"
  local port
  port="$(cat "$dir/port")"
  # A fresh log per launch: the readiness check must not see an earlier run's lines.
  if [ -f "$dir/server.log" ]; then mv "$dir/server.log" "$dir/server.log.prev"; fi
  # setsid: the broker gets its own process group, so that a Ctrl-C in the caller's shell
  # does not reach it and `stop` decides when it ends.
  set_java_cmd "$dir"
  setsid "${java_cmd[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + start_timeout_s))
  while :; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      tail -n 40 "$dir/server.log" >&2 || true
      die "broker exited during start-up (log: $dir/server.log)"
    fi
    # "Kafka Server started" is logged after the broker is unfenced and serving.
    if grep -q 'Kafka Server started' "$dir/server.log" 2>/dev/null \
      && python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$port" 2>/dev/null; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$dir/server.log" >&2 || true
      die "broker not ready after ${start_timeout_s}s (log: $dir/server.log)"
    fi
    sleep 0.25
  done
}

start() {
  local dir="$1"
  fetch
  mkdir -p "$dir/data" "$dir/logs"
  local port cport
  port="$(free_port)"
  cport="$(free_port)"
  while [ "$cport" = "$port" ]; do cport="$(free_port)"; done
  echo "$port" >"$dir/port"
  echo "$cport" >"$dir/controller_port"
  write_config "$dir" "$port" "$cport"
  # A cluster id is 16 random bytes, URL-safe base64 without padding (Kafka's Uuid). Like
  # Kafka's Uuid.randomUuid, draw again when it starts with "-": the storage tool would read
  # it as an option.
  local cluster_id
  cluster_id="$(python3 -c '
import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
')"
  set_java_cmd "$dir"
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting the storage failed"; }
  launch "$dir"
  echo "127.0.0.1:$port"
}

stop() {
  local dir="$1"
  [ -f "$dir/pid" ] || return 0
  local pid
  pid="$(cat "$dir/pid")"
  kill -CONT "$pid" 2>/dev/null || true # a paused broker cannot handle SIGTERM
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 80); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

cmd="${1:-}"
case "$cmd" in
fetch)
  fetch
  echo "$libs"
  ;;
start)
  [ $# -eq 2 ] || die "usage: kafka.sh start DIR"
  start "$2"
  ;;
stop)
  [ $# -eq 2 ] || die "usage: kafka.sh stop DIR"
  stop "$2"
  ;;
restart)
  [ $# -eq 2 ] || die "usage: kafka.sh restart DIR"
  stop "$2"
  launch "$2"
  echo "127.0.0.1:$(cat "$2/port")"
  ;;
pause | resume)
  [ $# -eq 2 ] || die "usage: kafka.sh $cmd DIR"
  sig=STOP
  [ "$cmd" = resume ] && sig=CONT
  kill -"$sig" "$(cat "$2/pid")"
  ;;
*) die "usage: kafka.sh fetch|start DIR|stop DIR|restart DIR|pause DIR|resume DIR" ;;
esac
