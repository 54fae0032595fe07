"""The Toxiproxy servers a proxy-facing test can run against: ours, in-process, always; and a real
`toxiproxy-server` when the TOXIPROXY_SERVER environment variable names its binary.

A test module parametrizes its server fixture with `SERVERS` and calls `running_server(kind)` from it.
A real server is started per test on a free port and stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from typing import Iterator

from faults.toxiproxy.server import serve_in_thread

REAL = os.environ.get("TOXIPROXY_SERVER", "")
SERVERS = ["ours", "real"] if REAL else ["ours"]  # no "real" cases at all without it: no skip noise
READY_DEADLINE_S = 10.0


@contextlib.contextmanager
def running_server(kind: str, seed: int = 1) -> Iterator[str]:
    """The API URL of a fresh server of `kind` ("ours" or "real")."""
    if kind == "ours":
        with serve_in_thread(seed=seed) as running:
            yield running.url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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
