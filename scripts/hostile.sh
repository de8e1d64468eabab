#!/usr/bin/env bash
# The slow and big hostile-input cases, against a release `scrapepool run` (standalone, one
# process per case) and `scrapepool check`: prints case, behaviour, verdict and peak memory
# (VmHWM of the process). The fast cases are tests (README, "Hostile inputs").
#
#   scripts/hostile.sh                      # every case, default memory budget
#   MEMORY_BUDGET=2GiB scripts/hostile.sh   # with --memory-budget 2GiB
#   CASES="bomb16 endless" scripts/hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SCRAPEPOOL_BIN:-target/release/scrapepool}
PROMTOOL=${PROMTOOL:-$HOME/.cache/scrapepool/go/promtool-v0.316.0/promtool}
CASES=${CASES:-"bomb1 bomb16 endless flood healthy jobs100k targets1m laughs deep"}
ROUND_S=${ROUND_S:-12}
if [[ ! -x $BIN ]]; then
    CARGO_INCREMENTAL=0 cargo build --release -p scrapepool
fi
work=$(mktemp -d)
server_pid=""
run_pid=""
cleanup() {
    [[ -n $run_pid ]] && kill "$run_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The exporters: /bomb1 (1 GiB of zeros in 16 gzip members, 1 MiB on the wire), /bomb16
# (16 GiB in 256 members, 16 MiB on the wire), /endless (sample lines forever), /flood
# (5M samples, 80 MB), /healthy (a few samples).
cat >"$work/exporters.py" <<'EOF'
import sys, zlib, http.server, socketserver
def gz_member(n):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    z = bytes(1 << 20)
    return b"".join(c.compress(z) for _ in range(n)) + c.flush()
member = gz_member(64)
bodies = {"/bomb1": member * 16, "/bomb16": member * 256}
flood = b"".join(b'flood{i="%d"} 1\n' % i for i in range(5_000_000))
chunk = b"".join(b'endless{i="%d"} 1\n' % i for i in range(4096))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Connection", "close")
        try:
            if self.path in bodies:
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(bodies[self.path])))
                self.end_headers()
                self.wfile.write(bodies[self.path])
            elif self.path == "/endless":
                self.end_headers()
                while True:
                    self.wfile.write(chunk)
            elif self.path == "/flood":
                self.send_header("Content-Length", str(len(flood)))
                self.end_headers()
                self.wfile.write(flood)
            else:
                body = b"# TYPE healthy gauge\nhealthy 1\n"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF

peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { echo "$(( $1 / 1024 )) MiB"; }
rows=()
row() { rows+=("$1|$2|$3|$4"); }

exporter_port=$(free_port)
python3 "$work/exporters.py" "$exporter_port" &
server_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$exporter_port/healthy" >/dev/null 2>&1 && break
    sleep 0.2
done

budget_args=()
[[ -n ${MEMORY_BUDGET:-} ]] && budget_args=(--memory-budget "$MEMORY_BUDGET")

# One `scrapepool run` scraping /PATH and /healthy for ROUND_S seconds.
scrape_case() {
    local name=$1 path=$2 verdict_ok=$3
    local listen
    listen=127.0.0.1:$(free_port)
    cat >"$work/$name.yml" <<EOF
scrape_configs:
  - job_name: $name
    scrape_interval: 2s
    scrape_timeout: 1500ms
    metrics_path: $path
    static_configs:
      - targets: ['127.0.0.1:$exporter_port']
  - job_name: healthy
    scrape_interval: 2s
    scrape_timeout: 1500ms
    metrics_path: /healthy
    static_configs:
      - targets: ['127.0.0.1:$exporter_port']
EOF
    "$BIN" -v run --jobs "$work/$name.yml" --output "$work/$name.jsonl" --listen "$listen" \
        "${budget_args[@]}" >"$work/$name.log" 2>&1 &
    run_pid=$!
    sleep "$ROUND_S"
    local api peak alive
    api=$(curl -s "http://$listen/api/v1/targets" || true)
    peak=$(peak_kib "$run_pid")
    alive=yes
    kill -0 "$run_pid" 2>/dev/null || alive=no
    kill "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    run_pid=""
    local behaviour
    behaviour=$(python3 -c '
import json, sys
try:
    ts = json.loads(sys.argv[1])["data"]["activeTargets"]
except Exception:
    print("no answer from the API"); sys.exit()
out = []
for t in ts:
    out.append("%s: %s%s" % (t["scrapePool"], t["health"], (" (" + t["lastError"] + ")") if t["lastError"] else ""))
print("; ".join(out))' "$api")
    local healthy_up=no
    [[ $behaviour == *"healthy: up"* ]] && healthy_up=yes
    local verdict=FAIL
    if [[ $alive == yes && $healthy_up == yes && $behaviour == *"$verdict_ok"* ]]; then
        verdict=ok
    fi
    row "$name ($path)" "member alive: $alive; $behaviour" "$verdict" "$(mib "$peak")"
}

# `scrapepool check` and `promtool check config` on a generated jobs file.
check_case() {
    local name=$1 expect=$2
    local file=$work/$name.yml
    python3 - "$name" "$file" <<'EOF'
import sys
name, path = sys.argv[1], sys.argv[2]
with open(path, "w") as f:
    if name == "jobs100k":
        f.write("scrape_configs:\n")
        for i in range(100_000):
            f.write(f"  - job_name: j{i}\n    static_configs:\n      - targets: ['10.{i//65536}.{(i//256)%256}.{i%256}:9100']\n")
    elif name == "targets1m":
        f.write("scrape_configs:\n  - job_name: big\n    static_configs:\n      - targets:\n")
        for i in range(1_000_000):
            f.write(f"        - 10.{i//65536}.{(i//256)%256}.{i%256}:9100\n")
    elif name == "laughs":
        f.write("scrape_configs: []\n")
        f.write("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
        prev = "a"
        for n in "bcdefghi":
            f.write(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * 9) + "]\n")
            prev = n
    elif name == "deep":
        f.write("scrape_configs:\n  - job_name: x\n    metric_relabel_configs: " + "[" * 100_000 + "]" * 100_000 + "\n")
EOF
    local out peak secs status
    local start=$SECONDS
    set +e
    out=$(/usr/bin/time -f "%M" -o "$work/$name.time" "$BIN" check "$file" 2>&1)
    status=$?
    set -e
    secs=$(( SECONDS - start ))
    peak=$(tail -1 "$work/$name.time")
    local promtool_says=""
    if [[ -x $PROMTOOL ]]; then
        if "$PROMTOOL" check config "$file" >/dev/null 2>&1; then promtool_says="promtool: valid"; else promtool_says="promtool: invalid"; fi
    fi
    local verdict=FAIL
    [[ $out == *"$expect"* ]] && verdict=ok
    row "$name ($(du -h "$file" | cut -f1))" "exit $status in ${secs}s: $(echo "$out" | tail -1 | cut -c1-110); $promtool_says" "$verdict" "$(mib "$peak")"
}

for c in $CASES; do
    case $c in
        bomb1) scrape_case bomb1 /bomb1 "bomb1: down (body size limit exceeded)" ;;
        bomb16) scrape_case bomb16 /bomb16 "bomb16: down (body size limit exceeded)" ;;
        # Down at the body limit, or at the timeout when the exporter writes slower.
        endless) scrape_case endless /endless "endless: down (" ;;
        # Down at the sample cap, or at the body limit when the budget is small.
        flood) scrape_case flood /flood "flood: down (" ;;
        healthy) scrape_case healthy2 /healthy "healthy2: up" ;;
        jobs100k) check_case jobs100k "is valid: 100000 job(s)" ;;
        targets1m) check_case targets1m "is valid: 1 job(s)" ;;
        laughs) check_case laughs "budget breached" ;;
        deep) check_case deep "recursion limit exceeded" ;;
        *) echo "unknown case $c" >&2; exit 2 ;;
    esac
done

echo
echo "scrapepool $("$BIN" --version 2>/dev/null | awk '{print $2}'), memory budget ${MEMORY_BUDGET:-default}"
echo
echo "| case | behaviour | verdict | peak memory |"
echo "|---|---|---|---|"
failed=0
for r in "${rows[@]}"; do
    IFS='|' read -r c b v m <<<"$r"
    echo "| $c | $b | $v | $m |"
    [[ $v == ok ]] || failed=1
done
exit $failed
