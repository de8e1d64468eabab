#!/usr/bin/env python3
"""Side-by-side benchmark: scrapepool vs vmagent vs Prometheus agent on the same targets.

Run through bench/peers.sh (which installs the peers, builds scrapepool and starts ZooKeeper
and Kafka). The peers: vmagent v1.151.0 and Prometheus 3.16 in agent mode (built from their
Go modules by scripts/go-tools.sh), and Debian's vmagent 1.79.5 as a row of its own. The
loads: node_exporter x200 @1s, synthetic-heavy x20 @1s, and the fleet load, node_exporter
x5000 @15s. This script:

* serves N identical fixture targets at 127.0.1.1:P, 127.0.1.2:P, ... (one asyncio process,
  one listening socket per address, a prebuilt response: it only counts and writes);
* serves a remote-write receiver that reads each body and answers 204 (discards);
* runs each scraper in turn against the same targets for the same time, and measures, over
  the measuring window (after a warm-up), its CPU seconds (utime+stime of /proc/<pid>/stat)
  and, at the end, its peak RSS (VmHWM of /proc/<pid>/status);
* counts the samples each scraper scraped as (responses the targets served to it) x (samples
  per payload): the same count for everyone, independent of each scraper's own metrics.

The target server and the receiver run in their own processes; their CPU is printed
separately and is not in the scrapers' numbers.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- fixture targets (child)

def serve_targets(host_prefix, count, port, payload_path, ready, counter):
    """Serves `payload_path` at host_prefix.1..count on `port`; counts responses in `counter`."""
    body = open(payload_path, "rb").read()
    response = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    served = [0]

    class Target(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            # Requests are GETs without a body: one response per header block.
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.buf = self.buf[end + 4:]
                self.t.write(response)
                served[0] += 1

    async def main():
        loop = asyncio.get_running_loop()
        for i in range(count):
            addr = target_addr(host_prefix, i)
            await loop.create_server(Target, addr, port, backlog=256, reuse_address=True)
        ready.set()
        while True:
            await asyncio.sleep(0.2)
            counter.value = served[0]

    asyncio.run(main())


def target_addr(prefix, i):
    # 127.0.1.1 .. 127.0.1.250, then 127.0.2.1 ...: distinct loopback addresses.
    return f"{prefix}.{1 + i // 250}.{1 + i % 250}"


# ---------------------------------------------------------------- discarding receiver (child)

def serve_receiver(port, ready, counter):
    """Answers every POST with 204 after reading its body; counts requests in `counter`."""
    got = [0]

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = bytearray()
            self.need = None

        def data_received(self, data):
            self.buf += data
            while True:
                if self.need is None:
                    end = self.buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    head = bytes(self.buf[:end]).lower()
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    del self.buf[: end + 4]
                    self.need = length
                if len(self.buf) < self.need:
                    return
                del self.buf[: self.need]
                self.need = None
                got[0] += 1
                self.t.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    async def main():
        loop = asyncio.get_running_loop()
        await loop.create_server(Receiver, "127.0.0.1", port, backlog=256, reuse_address=True)
        ready.set()
        while True:
            await asyncio.sleep(0.2)
            counter.value = got[0]

    asyncio.run(main())


# ---------------------------------------------------------------- measuring

def cpu_seconds(pid):
    """utime+stime of a process, in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")": state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def lift_fd_limit(want):
    """Raises this process's (and so its children's) open-file limit to `want` if it can."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def samples_per_payload(path):
    n = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                n += 1
    return n


def http_get(url, timeout_s=2):
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.read().decode()


def metric_sum(text, name):
    """Sum of every series of `name` in an exposition (no labels filtering)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1]) if "}" not in line else float(line.rsplit("}", 1)[1].split()[0])
    return total


def wait_port(port, timeout_s=60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


# ---------------------------------------------------------------- the scrapers

def scrape_config_yaml(job, targets, interval_s, timeout_s):
    lines = [
        "global:",
        f"  scrape_interval: {interval_s}s",
        f"  scrape_timeout: {timeout_s}s",
        "scrape_configs:",
        f"  - job_name: {job}",
        "    static_configs:",
        "      - targets:",
    ]
    lines += [f"          - '{t}'" for t in targets]
    return "\n".join(lines) + "\n"


class Scraper:
    name = ""

    def start(self, work, config_path, receiver_port, log):
        raise NotImplementedError

    def stop(self, proc):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Scrapepool(Scraper):
    name = "scrapepool"

    def __init__(self, binary, zk, kafka, run_id):
        self.binary, self.zk, self.kafka, self.run_id = binary, zk, kafka, run_id

    def start(self, work, config_path, receiver_port, log):
        # A fresh chroot per run: the pool holds exactly this run's job and this member.
        chroot = f"/bench-{self.run_id}-{os.path.basename(work)}"
        zk = self.zk + chroot
        subprocess.run([self.binary, "jobs", "--zookeeper", zk, "apply", config_path], check=True, stdout=log, stderr=log)
        self.port = free_port()
        proc = subprocess.Popen(
            [self.binary, "run", "--zookeeper", zk, "--kafka", self.kafka, "--topic", f"bench-{self.run_id}",
             "--id", "bench-0", "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
        return proc

    def own_samples(self):
        try:
            return metric_sum(http_get(f"http://127.0.0.1:{self.port}/metrics"), "scrapepool_samples_emitted_total")
        except Exception:
            return None


class Vmagent(Scraper):
    def __init__(self, name, binary):
        self.name, self.binary = name, binary

    def start(self, work, config_path, receiver_port, log):
        self.port = free_port()
        return subprocess.Popen(
            [self.binary, f"-promscrape.config={config_path}", f"-remoteWrite.url=http://127.0.0.1:{receiver_port}/api/v1/write",
             f"-httpListenAddr=127.0.0.1:{self.port}", f"-remoteWrite.tmpDataPath={work}/vmagent-data", "-loggerLevel=WARN"],
            stdout=log, stderr=log)

    def own_samples(self):
        try:
            return metric_sum(http_get(f"http://127.0.0.1:{self.port}/metrics"), "vm_promscrape_scraped_samples_sum")
        except Exception:
            return None


class PrometheusAgent(Scraper):
    """Prometheus in agent mode: `--agent` from 3.0 on (`agent_flag` gives 2.x's flag)."""

    def __init__(self, name, binary, agent_flag="--agent"):
        self.name, self.binary, self.agent_flag = name, binary, agent_flag

    def start(self, work, config_path, receiver_port, log):
        self.port = free_port()
        cfg = open(config_path).read() + f"remote_write:\n  - url: http://127.0.0.1:{receiver_port}/api/v1/write\n"
        path = os.path.join(work, "prometheus.yml")
        open(path, "w").write(cfg)
        return subprocess.Popen(
            [self.binary, self.agent_flag, f"--config.file={path}", f"--storage.agent.path={work}/prom-data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=log)

    def own_samples(self):
        try:
            return metric_sum(http_get(f"http://127.0.0.1:{self.port}/metrics"), "prometheus_agent_samples_appended_total")
        except Exception:
            return None


# ---------------------------------------------------------------- one load

def run_load(args, load_name, payload, count, interval_s, warmup_s, duration_s, scrapers, out_dir):
    port = free_port()
    per_payload = samples_per_payload(payload)
    ctx = multiprocessing.get_context("fork")
    t_ready, t_count = ctx.Event(), ctx.Value("q", 0)
    r_ready, r_count = ctx.Event(), ctx.Value("q", 0)
    targets_proc = ctx.Process(target=serve_targets, args=("127.0", count, port, payload, t_ready, t_count), daemon=True)
    receiver_port = free_port()
    receiver_proc = ctx.Process(target=serve_receiver, args=(receiver_port, r_ready, r_count), daemon=True)
    targets_proc.start()
    receiver_proc.start()
    if not t_ready.wait(30) or not r_ready.wait(30):
        raise RuntimeError("the fixture server or the receiver did not start")
    targets = [f"{target_addr('127.0', i)}:{port}" for i in range(count)]
    rows = []
    try:
        for scraper in scrapers:
            work = tempfile.mkdtemp(prefix=f"{load_name}-{scraper.name}-", dir=out_dir)
            config_path = os.path.join(work, "scrape.yml")
            with open(config_path, "w") as f:
                f.write(scrape_config_yaml(f"bench_{load_name.replace('-', '_')}", targets, interval_s, min(args.timeout_s, interval_s)))
            log = open(os.path.join(work, "log.txt"), "w")
            print(f"[{load_name}] {scraper.name}: {count} targets every {interval_s}s, warm-up {warmup_s}s, measuring {duration_s}s", flush=True)
            proc = scraper.start(work, config_path, receiver_port, log)
            perf = None
            try:
                time.sleep(warmup_s)
                if proc.poll() is not None:
                    raise RuntimeError(f"{scraper.name} exited ({proc.returncode}); see {work}/log.txt")
                c0, s0, o0 = cpu_seconds(proc.pid), t_count.value, scraper.own_samples()
                tc0, rc0 = cpu_seconds(targets_proc.pid), cpu_seconds(receiver_proc.pid)
                load0 = os.getloadavg()[0]
                t0 = time.time()
                perf = None
                if args.perf and scraper.name == "scrapepool":
                    # A software clock event: works where hardware counters are not exposed (VMs).
                    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(proc.pid),
                                             "-o", os.path.join(work, "perf.data"), "--", "sleep", str(duration_s)], stdout=log, stderr=log)
                time.sleep(duration_s)
                c1, s1, o1 = cpu_seconds(proc.pid), t_count.value, scraper.own_samples()
                tc1, rc1 = cpu_seconds(targets_proc.pid), cpu_seconds(receiver_proc.pid)
                elapsed = time.time() - t0
                hwm = status_kib(proc.pid, "VmHWM")
                rss = status_kib(proc.pid, "VmRSS")
                load1 = os.getloadavg()[0]
            finally:
                if perf is not None:
                    perf.wait()
                scraper.stop(proc)
                log.close()
            scrapes = s1 - s0
            samples = scrapes * per_payload
            row = {
                "load": load_name, "scraper": scraper.name, "targets": count, "elapsed_s": round(elapsed, 2),
                "interval_s": interval_s, "scrapes": scrapes, "scrapes_expected": round(count * elapsed / interval_s),
                "samples": samples, "own_samples": None if o0 is None or o1 is None else o1 - o0,
                "cpu_s": round(c1 - c0, 2), "cpu_s_per_m_samples": round((c1 - c0) / samples * 1e6, 3) if samples else None,
                "peak_rss_mib": round(hwm / 1024, 1), "rss_end_mib": round(rss / 1024, 1),
                "targets_cpu_s": round(tc1 - tc0, 2), "receiver_cpu_s": round(rc1 - rc0, 2),
                "loadavg_1m": [round(load0, 2), round(load1, 2)],
            }
            rows.append(row)
            print("  " + json.dumps(row), flush=True)
            time.sleep(2)
    finally:
        targets_proc.terminate()
        receiver_proc.terminate()
        targets_proc.join(5)
        receiver_proc.join(5)
    return rows


def table(rows):
    out = []
    head = f"| load | scraper | scrapes (expected) | CPU s | CPU s / M samples | × scrapepool | peak RSS MiB | × scrapepool | targets-server CPU s | receiver CPU s |"
    out += [head, "|" + "---|" * 10]
    for load in dict.fromkeys(r["load"] for r in rows):
        group = [r for r in rows if r["load"] == load]
        base = next((r for r in group if r["scraper"] == "scrapepool"), None)
        for r in group:
            def ratio(key):
                if base is None or not base[key] or r[key] is None:
                    return "–"
                return f"{r[key] / base[key]:.2f}"
            out.append(
                f"| {load} ({r['targets']} targets) | {r['scraper']} | {r['scrapes']} ({r['scrapes_expected']}) | {r['cpu_s']} | "
                f"{r['cpu_s_per_m_samples']} | {ratio('cpu_s_per_m_samples')} | {r['peak_rss_mib']} | {ratio('peak_rss_mib')} | "
                f"{r['targets_cpu_s']} | {r['receiver_cpu_s']} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scrapepool", required=True, help="the scrapepool binary (release)")
    p.add_argument("--zookeeper", default=os.environ.get("SCRAPEPOOL_ZK"))
    p.add_argument("--kafka", default=os.environ.get("SCRAPEPOOL_KAFKA"))
    p.add_argument("--duration-s", type=float, default=60, help="measuring window of the 1 s loads")
    p.add_argument("--warmup-s", type=float, default=10, help="settling time of the 1 s loads before the window")
    p.add_argument("--fleet-duration-s", type=float, default=150, help="measuring window of the fleet load (10 intervals)")
    p.add_argument("--fleet-warmup-s", type=float, default=45, help="settling time of the fleet load (3 intervals)")
    p.add_argument("--timeout-s", type=int, default=1)
    p.add_argument("--loads", default="node-exporter,synthetic-heavy,fleet",
                   help="comma-separated: node-exporter (x200 @1s), synthetic-heavy (x20 @1s), fleet (node_exporter x5000 @15s)")
    p.add_argument("--scrapers", default="scrapepool,vmagent,vmagent-1.79.5,prometheus-agent")
    p.add_argument("--vmagent", default=os.environ.get("SCRAPEPOOL_VMAGENT_BIN", "vmagent"), help="vmagent v1.151.0")
    p.add_argument("--vmagent-debian", default="/usr/bin/vmagent", help="Debian's vmagent 1.79.5")
    p.add_argument("--prometheus", default=os.environ.get("SCRAPEPOOL_PROMETHEUS3_BIN", "prometheus"), help="Prometheus 3.16")
    p.add_argument("--node-exporter-targets", type=int, default=200)
    p.add_argument("--synthetic-heavy-targets", type=int, default=20)
    p.add_argument("--fleet-targets", type=int, default=5000)
    p.add_argument("--perf", action="store_true", help="perf record scrapepool in the window (its CPU then includes perf's sampling cost)")
    p.add_argument("--out", default=None, help="directory for logs and results.json (default: a temp dir)")
    args = p.parse_args()
    if not args.zookeeper or not args.kafka:
        sys.exit("peers.py: --zookeeper and --kafka (or SCRAPEPOOL_ZK/SCRAPEPOOL_KAFKA from scripts/services.sh) are needed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = args.out or tempfile.mkdtemp(prefix="scrapepool-bench-")
    os.makedirs(out_dir, exist_ok=True)
    run_id = str(int(time.time()))
    known = {
        "scrapepool": Scrapepool(os.path.abspath(args.scrapepool), args.zookeeper, args.kafka, run_id),
        "vmagent": Vmagent("vmagent", args.vmagent),
        "vmagent-1.79.5": Vmagent("vmagent-1.79.5", args.vmagent_debian),
        "prometheus-agent": PrometheusAgent("prometheus-agent", args.prometheus),
    }
    scrapers = [known[s] for s in args.scrapers.split(",")]
    node_exporter = os.path.join(root, "testdata/exposition/node_exporter-1.5.0.prom")
    # name: (payload, targets, interval s, warm-up s, window s)
    loads = {
        "node-exporter": (node_exporter, args.node_exporter_targets, 1, args.warmup_s, args.duration_s),
        "synthetic-heavy": (os.path.join(root, "testdata/exposition/synthetic-heavy.prom"), args.synthetic_heavy_targets,
                            1, args.warmup_s, args.duration_s),
        "fleet": (node_exporter, args.fleet_targets, 15, args.fleet_warmup_s, args.fleet_duration_s),
    }
    # The fleet load holds a listening socket per target and a connection per target in
    # each of the target server and the scraper: lift the descriptor limit for all children.
    lift_fd_limit(4 * args.fleet_targets + 1024)
    print(f"peers.py: {os.cpu_count()} CPUs, load average {os.getloadavg()}, logs in {out_dir}", flush=True)
    rows = []
    for name in args.loads.split(","):
        payload, count, interval_s, warmup_s, duration_s = loads[name]
        print(f"[{name}] {samples_per_payload(payload)} samples per payload ({os.path.getsize(payload)} bytes)", flush=True)
        rows += run_load(args, name, payload, count, interval_s, warmup_s, duration_s, scrapers, out_dir)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print()
    print(table(rows))
    print(f"\nload average at the end: {os.getloadavg()}; results in {out_dir}/results.json")


if __name__ == "__main__":
    main()
