"""Real Redis traffic through the Toxiproxy-compatible proxy: toxics take effect and go away."""

from __future__ import annotations

import json
import statistics
import urllib.request

import pytest

from faults.toxiproxy.api import SERVER_INFO_PATH
from faults.toxiproxy.client import ToxiproxyClient
from stack.images import missing_native
from stack.stack import Stack
from tests.native import required

pytestmark = pytest.mark.chaos

# Runs inside a container of the stack: N Redis PINGs through the proxy, their round trips in seconds.
PING_SCRIPT = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
try:
    s = socket.create_connection((host, port), timeout=2)
    for _ in range(n):
        t = time.monotonic(); s.sendall(b"PING\r\n"); buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        assert buf == b"+PONG\r\n", buf
        out.append(time.monotonic() - t)
    print(json.dumps({"rtts": out}))
except (OSError, ConnectionError) as exc:
    print(json.dumps({"rtts": out, "error": type(exc).__name__}))
"""


@pytest.fixture(scope="module")
def stack():
    with Stack("small", with_services=False) as stack:
        yield stack


def pings(stack: Stack, link, n: int = 5) -> dict:
    code, out = stack.exec("redis2", ["python3", "-c", PING_SCRIPT, "proxy", str(link.listen_port), str(n)])
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_latency_toxic_adds_its_amount_and_goes_away(stack):
    link = next(l for l in stack.topology.links if l.name == "workers-redis1")
    proxy = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', 8474)}")
    before = pings(stack, link)
    assert "error" not in before and statistics.median(before["rtts"]) < 0.1

    proxy.add_toxic(link.name, "latency", stream="downstream", latency=300, jitter=0)
    during = pings(stack, link)
    assert "error" not in during
    assert 0.3 <= statistics.median(during["rtts"]) < 0.6, during

    proxy.remove_toxic(link.name, "latency_downstream")
    after = pings(stack, link)
    assert "error" not in after and statistics.median(after["rtts"]) < 0.1, after


def test_timeout_toxic_blackholes_and_goes_away(stack):
    link = next(l for l in stack.topology.links if l.name == "workers-redis1")
    proxy = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', 8474)}")
    proxy.add_toxic(link.name, "timeout", stream="upstream", timeout=0)
    during = pings(stack, link, n=1)
    assert during == {"rtts": [], "error": "TimeoutError"}

    proxy.remove_toxic(link.name, "timeout_upstream")
    after = pings(stack, link)
    assert "error" not in after and len(after["rtts"]) == 5


def test_disabled_link_refuses_and_reenabled_link_serves(stack):
    link = next(l for l in stack.topology.links if l.name == "api-redis1")
    proxy = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', 8474)}")
    proxy.set_enabled(link.name, False)
    assert pings(stack, link, n=1)["error"] in ("ConnectionRefusedError", "ConnectionError")
    proxy.set_enabled(link.name, True)
    assert len(pings(stack, link)["rtts"]) == 5


def test_the_stacks_proxy_moves_bytes_on_the_data_path_built_here(stack):
    # The proxy image carries faults/pump's module when scripts/build-native built it (CI requires it), and
    # the proxy then uses it: the tests above ran through it, toxics handing connections to Python and back.
    built = not missing_native("proxy")
    if not built and required():
        pytest.fail("the proxy's compiled data path is not built (scripts/build-native); HARNESS_REQUIRE_NATIVE=1")
    url = f"http://127.0.0.1:{stack.host_port('proxy', 8474)}{SERVER_INFO_PATH}"
    with urllib.request.urlopen(url, timeout=5) as response:
        info = json.load(response)
    assert info["data_path"] == ("compiled" if built else "python"), info
    link = next(l for l in stack.topology.links if l.name == "workers-redis1")
    assert len(pings(stack, link)["rtts"]) == 5
