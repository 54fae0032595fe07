"""The proxy's own cost, side by side: our proxy, a direct connection and (when TOXIPROXY_SERVER names a
`toxiproxy-server` binary) a real Toxiproxy, with no toxic, on loopback.

    python3 benchmarks/proxy.py [--rounds 15] [--round-trips 2000] [--bulk-mib 512] [--churn-s 1.0]

Rows (issue #19's table): added round-trip p50/p99 of a 64 B ping-pong on one connection (unpinned; client,
echo and proxy all on CPU 0; the proxy alone on CPU 1), proxy CPU per round trip, bulk MB/s one way,
connection churn (connect, 64 B, close) per second, proxy CPU per connection and proxy RSS after the churn.
"Added" is the proxied figure minus the direct one of the same round. Targets are measured in turn within
each round (interleaved), and the JSON printed at the end holds each row's median over the rounds, plus
ours/real where a real server ran. Pinning needs 2 CPUs; with fewer the pinned rows are left out.
15 rounds (about 90 s): the p99s, the proxy alone on CPU 1 above all, catch bursts of this virtual
machine's wake-up latency that hit real Toxiproxy and ours alike; over 5 rounds their medians flipped from
run to run (ours/real from 0.52 to 1.66 in six runs on 2026-12-05, both sides' p50 steady).

Ours runs as the proxy image runs it (stack/images/proxy/Dockerfile): Debian's /usr/bin/python3 when this
host has it, else this interpreter, with the image's environment (PYTHONDONTWRITEBYTECODE=1). The JSON
names the command ("ours_command"): a development interpreter's site (editable installs' .pth files, a
pyenv build) costs megabytes the image does not have. CHAOS_PROXY_NATIVE passes through as it is set
("ours_data_path" says which data path ours ran: "compiled" when faults/pump is built, else "python").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = b"x" * 64

# A separate process, so the upstream does not share the benchmark's interpreter: port A echoes,
# port B swallows a stream of the length its first 8 bytes give and answers "ok" (no half-close: Toxiproxy
# closes both directions when one ends).
UPSTREAM = r"""
import socket, sys, threading
def serve(sock, handle):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
def sink(conn):
    with conn:
        header = b""
        while len(header) < 8:
            header += conn.recv(8 - len(header))
        left = int.from_bytes(header, "big")
        while left > 0:
            data = conn.recv(min(left, 1 << 20))
            if not data:
                return
            left -= len(data)
        conn.sendall(b"ok")
socks = []
for handle in (echo, sink):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(512); socks.append(s)
    threading.Thread(target=serve, args=(s, handle), daemon=True).start()
print(socks[0].getsockname()[1], socks[1].getsockname()[1], flush=True)
threading.Event().wait()
"""


# What the image's CMD runs (python3 -m faults.toxiproxy.server) and the environment its Dockerfile sets.
IMAGE_PYTHON = "/usr/bin/python3"
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


def ours_command() -> list[str]:
    python = IMAGE_PYTHON if os.access(IMAGE_PYTHON, os.X_OK) else sys.executable
    return [python, "-m", "faults.toxiproxy.server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, deadline_s: float = 10.0) -> None:
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > give_up:
                raise SystemExit(f"benchmark: {url} did not answer within {deadline_s:g}s ({exc})")
            time.sleep(0.05)


def api(url: str, method: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


class Target:
    """Where the client connects: straight to the upstream, or through a proxy process."""

    def __init__(self, name: str, command: list[str] | None, echo_port: int, sink_port: int,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.echo_port, self.sink_port = echo_port, sink_port
        self.data_path: str | None = None  # ours says which data path moves its bytes; real has no such page
        if command is None:
            return
        port = free_port()
        self.process = subprocess.Popen(command + ["-port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO),
                                                                        "LOG_LEVEL": "WARNING", **(env or {})})
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/version")
        if name == "ours":
            with urllib.request.urlopen(url + "/faults/server", timeout=5) as response:
                self.data_path = json.load(response)["data_path"]
        for name_, upstream in (("echo", echo_port), ("sink", sink_port)):
            proxy = api(url, "POST", "/proxies", {"name": name_, "listen": "127.0.0.1:0",
                                                   "upstream": f"127.0.0.1:{upstream}"})
            setattr(self, f"{name_}_port", int(proxy["listen"].rsplit(":", 1)[1]))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def cpu_s(self) -> float:
        if self.pid is None:
            return 0.0
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ping_pong(port: int, count: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):  # warm up
            sock.sendall(PAYLOAD)
            sock.recv(64)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                got += len(sock.recv(64))
            times.append(time.perf_counter() - started)
    return times


def bulk_mb_s(port: int, mib: int) -> float:
    block = b"\0" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        started = time.perf_counter()
        sock.sendall((mib << 20).to_bytes(8, "big"))
        for _ in range(mib):
            sock.sendall(block)
        answer = b""
        while len(answer) < 2 and (chunk := sock.recv(16)):
            answer += chunk
        elapsed = time.perf_counter() - started
    if answer != b"ok":
        raise SystemExit(f"benchmark: the sink behind port {port} answered {answer!r} after {mib} MiB")
    return mib * (1 << 20) / elapsed / 1e6


def churn(port: int, seconds: float) -> int:
    done = 0
    give_up = time.perf_counter() + seconds
    while time.perf_counter() < give_up:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                got += len(sock.recv(64))
        done += 1
    return done


def threads(pid: int) -> list[int]:
    """Every thread of a process: sched_setaffinity(pid) moves only the thread whose id is the pid, so a
    multi-threaded proxy (Go's runtime, our native pump) or the upstream's per-connection threads would
    otherwise keep running on any CPU. Threads started later inherit their creator's affinity."""
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def pinned(pids: dict[int, set[int]], run: Callable[[], Any]) -> Any:
    """Run with the given CPU affinities (every thread of each process), then give them all CPUs back."""
    everything = os.sched_getaffinity(0)
    try:
        for pid, cpus in pids.items():
            for tid in threads(pid):
                try:
                    os.sched_setaffinity(tid, cpus)
                except ProcessLookupError:  # a thread that ended meanwhile (an upstream connection's)
                    pass
        return run()
    finally:
        for pid in pids:
            for tid in threads(pid):
                try:
                    os.sched_setaffinity(tid, everything)
                except OSError:
                    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(target: Target, upstream_pid: int, args: argparse.Namespace, two_cpus: bool) -> dict[str, float]:
    row: dict[str, float] = {}
    me = os.getpid()
    cpu0 = target.cpu_s()
    times = ping_pong(target.echo_port, args.round_trips)
    row["rt_p50_us"] = percentile(times, 0.5) * 1e6
    row["rt_p99_us"] = percentile(times, 0.99) * 1e6
    if target.pid is not None:
        row["proxy_cpu_per_rt_us"] = (target.cpu_s() - cpu0) / (args.round_trips + 50) * 1e6
    if two_cpus:
        together = {me: {0}, upstream_pid: {0}} | ({target.pid: {0}} if target.pid else {})
        times = pinned(together, lambda: ping_pong(target.echo_port, args.round_trips))
        row["rt_p50_one_cpu_us"] = percentile(times, 0.5) * 1e6
        row["rt_p99_one_cpu_us"] = percentile(times, 0.99) * 1e6
        apart = {me: {0}, upstream_pid: {0}} | ({target.pid: {1}} if target.pid else {})
        times = pinned(apart, lambda: ping_pong(target.echo_port, args.round_trips))
        row["rt_p50_proxy_own_cpu_us"] = percentile(times, 0.5) * 1e6
        row["rt_p99_proxy_own_cpu_us"] = percentile(times, 0.99) * 1e6
    if args.bulk_mib:
        row["bulk_mb_s"] = bulk_mb_s(target.sink_port, args.bulk_mib)
    cpu0 = target.cpu_s()
    connections = churn(target.echo_port, args.churn_s)
    row["churn_per_s"] = connections / args.churn_s
    if target.pid is not None:
        row["proxy_cpu_per_conn_us"] = (target.cpu_s() - cpu0) / max(1, connections) * 1e6
        row["proxy_rss_mib"] = target.rss_mib()
    return row


ADDED = ("rt_p50_us", "rt_p99_us", "rt_p50_one_cpu_us", "rt_p99_one_cpu_us", "rt_p50_proxy_own_cpu_us",
         "rt_p99_proxy_own_cpu_us")
HIGHER_IS_BETTER = {"bulk_mb_s", "churn_per_s"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--bulk-mib", type=int, default=512)
    parser.add_argument("--churn-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    two_cpus = len(os.sched_getaffinity(0)) >= 2 and {0, 1} <= os.sched_getaffinity(0)
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    echo_port, sink_port = map(int, upstream.stdout.readline().split())
    targets = [Target("direct", None, echo_port, sink_port),
               Target("ours", ours_command(), echo_port, sink_port, IMAGE_ENV)]
    real = os.environ.get("TOXIPROXY_SERVER")
    if real:
        targets.append(Target("real", [real], echo_port, sink_port))
    rounds: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
    try:
        for index in range(args.rounds):
            for target in targets:
                row = measure(target, upstream.pid, args, two_cpus)
                rounds[target.name].append(row)
            direct = rounds["direct"][-1]
            for target in targets[1:]:
                row = rounds[target.name][-1]
                for key in ADDED:
                    if key in row:
                        row[f"added_{key}"] = row[key] - direct[key]
            print(f"round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for target in targets:
            target.stop()
        upstream.kill()
        upstream.wait()
    medians = {name: {key: round(statistics.median(r[key] for r in rows), 2) for key in rows[0]}
               for name, rows in rounds.items()}
    result: dict[str, Any] = {"rounds": args.rounds, "round_trips": args.round_trips, "bulk_mib": args.bulk_mib,
                              "churn_s": args.churn_s, "pinned_rows": two_cpus,
                              "ours_command": " ".join(ours_command()),
                              "ours_data_path": targets[1].data_path,
                              "load_average": os.getloadavg(), "median": medians}
    if "real" in medians:
        result["ours_over_real"] = {
            key: round(medians["real"][key] / medians["ours"][key], 2) if key in HIGHER_IS_BETTER
            else round(medians["ours"][key] / medians["real"][key], 2)
            for key in medians["ours"] if key in medians["real"] and medians["real"][key] and medians["ours"][key]}
        result["note"] = "ours_over_real: cost ratio, <= 1.0 means ours is at least as good (throughputs inverted)"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
