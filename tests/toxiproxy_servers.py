"""The Toxiproxy servers a proxy-facing test can run against: ours, in-process, always, with the data path
it picks by itself (the compiled one, faults/pump, when built); ours again on the pure-Python data path
(as with CHAOS_PROXY_NATIVE=0) when the compiled one is built, so that both stay checked; and a real
`toxiproxy-server` when the TOXIPROXY_SERVER environment variable names its binary.

A test module parametrizes its server fixture with `SERVERS` and calls `running_server(kind)` from it.
A real server is started per test on a free port and stopped by its pid. Beside them, what the proxy tests
share: an echoing upstream, a round trip through a proxy and a wait with a deadline.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Callable, Iterator

from faults.toxiproxy import pump
from faults.toxiproxy.server import serve_in_thread

REAL = os.environ.get("TOXIPROXY_SERVER", "")
PUMP_BUILT = importlib.util.find_spec("faults.toxiproxy._pump") is not None
# no "real" cases at all without it, and no second "ours" without the pump: no skip noise
SERVERS = ["ours"] + (["ours-python"] if PUMP_BUILT else []) + (["real"] if REAL else [])
READY_DEADLINE_S = 10.0


def free_port() -> int:
    """A loopback port free right now (for a server started on it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(kind: str, seed: int = 1) -> Iterator[str]:
    """The API URL of a fresh server of `kind` ("ours", "ours-python" or "real")."""
    if kind in ("ours", "ours-python"):
        saved = list(pump._loaded)
        pump._loaded[:] = [None] if kind == "ours-python" else saved  # each proxy asks pump.native() when made
        try:
            with serve_in_thread(seed=seed) as running:
                yield running.url
        finally:
            pump._loaded[:] = saved
        return
    port = free_port()
    process = subprocess.Popen([REAL, "-host", "127.0.0.1", "-port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + READY_DEADLINE_S
        while True:
            try:
                with urllib.request.urlopen(url + "/version", timeout=1):
                    break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > give_up:
                    raise RuntimeError(f"{REAL} did not answer GET /version within {READY_DEADLINE_S:g}s "
                                       f"(exit {process.poll()}, last: {exc})") from None
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Echo:
    """An upstream that echoes every byte back, one thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0  # connections the proxy made to this upstream
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed during a round trip"
        received += chunk
    assert received == payload
    return time.monotonic() - started


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    give_up = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"waited {deadline_s}s for {what}")
        time.sleep(0.01)
