"""The proxy's compiled data path (faults/pump, used when built unless CHAOS_PROXY_NATIVE=0): it really carries a
toxic-free proxy's connections, hands them to Python's links with the bytes in flight when a toxic comes,
takes the listener back when the last toxic goes, and is simply absent where it is not built.

The rest of the proxy's behaviour is the other proxy tests, each run on both data paths
(tests/toxiproxy_servers.py: "ours" and "ours-python").
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from typing import Iterator

import pytest
import requests

import faults.toxiproxy
from faults.toxiproxy import pump
from faults.toxiproxy.api import SERVER_INFO_PATH
from faults.toxiproxy.metrics import Metrics
from faults.toxiproxy.server import ServerThread, serve_in_thread
from tests.native import unavailable
from tests.toxiproxy_servers import PUMP_BUILT, Echo, round_trip, wait_until

def require_pump() -> None:
    if not PUMP_BUILT:
        unavailable("the proxy's compiled data path is not built (scripts/build-native)")


class Upstream:
    """Echoes (unless `echoing` is off) and answers an EOF with b"<eof>"; while `hold` is set it reads nothing
    (so bytes pile up in the proxy)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        # small, and set before listen (inherited with a matching window scale): the proxy fills it fast
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hold = threading.Event()
        self.echoing = True
        self.received = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    while self.hold.is_set():
                        time.sleep(0.01)
                    data = conn.recv(65536)
                    if not data:
                        conn.sendall(b"<eof>")
                        return
                    self.received += data
                    if self.echoing:
                        conn.sendall(data)
            except OSError:
                pass


@pytest.fixture()
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    require_pump()
    monkeypatch.setattr(pump, "_loaded", [])
    monkeypatch.setenv(pump.ENV, "1")


@pytest.fixture()
def server(native: None) -> Iterator[ServerThread]:
    with serve_in_thread(seed=3) as running:
        yield running


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.sock.close()


def make_proxy(server: ServerThread, upstream: Upstream) -> int:
    response = requests.post(f"{server.url}/proxies", timeout=3,
                             json={"name": "p", "listen": "127.0.0.1:0", "upstream": f"localhost:{upstream.port}"})
    assert response.status_code == 201, response.text
    return int(response.json()["listen"].rsplit(":", 1)[1])


def test_the_pump_carries_a_proxy_without_toxics_and_hands_it_over_for_one(server: ServerThread,
                                                                            upstream: Upstream) -> None:
    port = make_proxy(server, upstream)
    proxy = server.server.proxies.get("p")  # type: ignore[union-attr]
    from faults.toxiproxy import _pump
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        round_trip(sock)
        assert proxy._pumped is not None and _pump.connections(proxy._pumped) == 1 and not proxy.connections
        response = requests.post(f"{server.url}/proxies/p/toxics", timeout=3,
                                 json={"type": "latency", "attributes": {"latency": 150}})
        assert response.status_code == 200, response.text
        assert round_trip(sock) >= 0.14  # the same connection, now through Python's links
        assert proxy._pumped is None and len(proxy.connections) == 1
        assert [c.context.serial for c in proxy.connections] == [1]  # the serial Python would have given it
        assert requests.delete(f"{server.url}/proxies/p/toxics/latency_downstream", timeout=3).status_code == 204
        assert round_trip(sock) < 0.14
        assert proxy._pumped is not None  # the listener is the pump's again; this connection stays in Python
        with socket.create_connection(("127.0.0.1", port), timeout=3) as second:
            round_trip(second)
            assert _pump.connections(proxy._pumped) == 1


def test_bytes_in_flight_at_the_handover_arrive_once_and_in_order(server: ServerThread, upstream: Upstream) -> None:
    port = make_proxy(server, upstream)
    upstream.hold.set()
    upstream.echoing = False
    payload = os.urandom(4 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        time.sleep(0.3)  # the upstream's buffers are full: the pump holds what it read but could not write
        response = requests.post(f"{server.url}/proxies/p/toxics", timeout=3,
                                 json={"type": "noop", "stream": "upstream"})
        assert response.status_code == 200, response.text
        upstream.hold.clear()
        sender.join(10)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        assert sock.recv(100) == b"<eof>"  # the half-close came through after every byte
    assert bytes(upstream.received) == payload


def test_a_half_close_passes_through_the_pump_and_disabling_closes_its_connections(server: ServerThread,
                                                                                   upstream: Upstream) -> None:
    port = make_proxy(server, upstream)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        round_trip(sock, b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b"<eof>"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        round_trip(sock)
        assert requests.post(f"{server.url}/proxies/p", json={"enabled": False}, timeout=3).status_code == 200
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_an_unreachable_upstream_closes_the_pumps_client(server: ServerThread) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    response = requests.post(f"{server.url}/proxies", timeout=3,
                             json={"name": "d", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{dead}"})
    port = int(response.json()["listen"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass


@pytest.mark.parametrize("setting, data_path", [(None, "compiled"), ("1", "compiled"), ("0", "python")])
def test_the_pump_is_used_when_built_unless_turned_off(monkeypatch: pytest.MonkeyPatch, upstream: Upstream,
                                                       setting: str | None, data_path: str) -> None:
    require_pump()
    monkeypatch.setattr(pump, "_loaded", [])
    if setting is None:
        monkeypatch.delenv(pump.ENV, raising=False)
    else:
        monkeypatch.setenv(pump.ENV, setting)
    with serve_in_thread(seed=3) as running:
        assert requests.get(running.url + SERVER_INFO_PATH, timeout=3).json()["data_path"] == data_path
        port = make_proxy(running, upstream)
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            round_trip(sock)
        assert (running.server.proxies.get("p")._pumped is not None) == (data_path == "compiled")  # type: ignore[union-attr]


def test_without_the_module_the_proxy_pumps_in_python(monkeypatch: pytest.MonkeyPatch,
                                                      upstream: Upstream) -> None:
    monkeypatch.setattr(pump, "_loaded", [])
    monkeypatch.setenv(pump.ENV, "1")
    monkeypatch.setitem(sys.modules, "faults.toxiproxy._pump", None)  # as if never built
    monkeypatch.delattr(faults.toxiproxy, "_pump", raising=False)
    assert pump.native() is None
    with serve_in_thread(seed=3) as running:
        port = make_proxy(running, upstream)
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            round_trip(sock)
        assert running.server.proxies.get("p")._pumped is None  # type: ignore[union-attr]


def test_the_pump_sleeps_while_its_connections_are_idle_or_half_closed(server: ServerThread,
                                                                        upstream: Upstream) -> None:
    # The pump blocks in epoll_wait; a level-triggered socket it cannot serve must not wake it over and over.
    port = make_proxy(server, upstream)
    upstream.hold.set()  # the upstream neither reads nor answers the half-close
    idle = socket.create_connection(("127.0.0.1", port), timeout=3)
    half = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        half.sendall(b"x" * 100)
        half.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        before = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - before < 0.1  # every thread of this process, the pump's included
    finally:
        upstream.hold.clear()
        idle.close()
        half.close()


def test_connections_moved_back_and_forth_mid_transfer_lose_and_reorder_nothing(server: ServerThread) -> None:
    # Each toggle hands every open connection from the pump to Python's links (toxic added) and the
    # listener back (toxic removed); the clients check every echoed byte.
    echo_server = Echo()
    response = requests.post(f"{server.url}/proxies", timeout=3, json={
        "name": "p", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_server.port}"})
    port = int(response.json()["listen"].rsplit(":", 1)[1])
    failures: list[str] = []

    def client(index: int) -> None:
        data = os.urandom(2 << 20)
        got = bytearray()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            def receive() -> None:
                while len(got) < len(data) and (chunk := sock.recv(65536)):
                    got.extend(chunk)
            receiver = threading.Thread(target=receive)
            receiver.start()
            for offset in range(0, len(data), 7000):
                sock.sendall(data[offset:offset + 7000])
            receiver.join(20)
        if bytes(got) != data:
            failures.append(f"client {index}: {len(got)} of {len(data)} bytes, equal prefix: "
                            f"{bytes(got) == data[:len(got)]}")

    clients = [threading.Thread(target=client, args=(index,)) for index in range(4)]
    for each in clients:
        each.start()
    toggles = 0
    try:
        while any(each.is_alive() for each in clients):
            stream = "upstream" if toggles % 2 else "downstream"
            assert requests.post(f"{server.url}/proxies/p/toxics", timeout=3,
                                 json={"type": "noop", "stream": stream, "name": "n"}).status_code == 200
            assert requests.delete(f"{server.url}/proxies/p/toxics/n", timeout=3).status_code == 204
            toggles += 1
    finally:
        for each in clients:
            each.join(30)
        echo_server.sock.close()
    assert not failures, failures
    assert toggles >= 2


def test_proxy_metrics_count_each_byte_once_across_the_handover(native: None, upstream: Upstream) -> None:
    with serve_in_thread(seed=3, metrics=Metrics(proxy_metrics=True)) as running:
        port = make_proxy(running, upstream)
        proxy = running.server.proxies.get("p")  # type: ignore[union-attr]

        def counted() -> dict[str, int]:
            text = requests.get(f"{running.url}/metrics", timeout=3).text
            return {f"{name}/{direction}": int(value) for name, direction, value in re.findall(
                r'^toxiproxy_proxy_(received|sent)_bytes_total\{direction="(\w+)",.*\} (\d+)$', text, re.M)}

        def expect(total: int) -> None:
            want = {f"{name}/{direction}": total for name in ("received", "sent")
                    for direction in ("upstream", "downstream")}
            wait_until(lambda: counted() == want, 3, f"{want} in /metrics (last {counted()})")

        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            round_trip(sock, b"12345")
            assert proxy._pumped is not None
            expect(5)  # live from the pump
            assert requests.post(f"{running.url}/proxies/p/toxics", timeout=3,
                                 json={"type": "noop", "name": "n"}).status_code == 200
            round_trip(sock, b"1234567")
            expect(12)  # the pump's final counts plus Python's
            assert requests.delete(f"{running.url}/proxies/p/toxics/n", timeout=3).status_code == 204
            with socket.create_connection(("127.0.0.1", port), timeout=3) as second:
                round_trip(second, b"123")
                expect(15)
