"""The Toxiproxy-compatible server, measured: toxics really delay, cut, reset and close real TCP traffic.

The server runs in-process (its own event loop in a thread) in front of a local echo server; every wait
has a deadline, and timings have margins wide enough for a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from faults.toxiproxy.link import toxic_random
from faults.toxiproxy.server import serve_in_thread
from faults.toxiproxy.toxics import ToxicStub, toxic_type
from tests.toxiproxy_servers import SERVERS, Echo, free_port, round_trip, running_server, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture(params=SERVERS)
def toxiproxy(request: pytest.FixtureRequest) -> Iterator[str]:
    """Ours; with TOXIPROXY_SERVER set, a real Toxiproxy too, except for tests of what only ours does."""
    if request.param == "real" and request.node.get_closest_marker("ours_only"):
        pytest.skip(f"ours only: {request.node.get_closest_marker('ours_only').args[0]}")
    with running_server(request.param, seed=7) as url:
        yield url


def api(method: str, url: str, body: object = None) -> requests.Response:
    return requests.request(method, url, json=body, timeout=3)


def make_proxy(url: str, upstream_port: int, name: str = "echo") -> int:
    response = api("POST", f"{url}/proxies",
                   {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"})
    assert response.status_code == 201, response.text
    return int(response.json()["listen"].rsplit(":", 1)[1])


@pytest.fixture()
def proxy_port(toxiproxy: str, echo: Echo) -> int:
    return make_proxy(toxiproxy, echo.port)


def add_toxic(url: str, type_: str, stream: str = "downstream", toxicity: float = 1.0, **attributes: int) -> dict:
    response = api("POST", f"{url}/proxies/echo/toxics",
                   {"type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes})
    assert response.status_code == 200, response.text
    return response.json()


def connect(port: int, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_until_eof(sock: socket.socket, deadline_s: float) -> bytes:
    sock.settimeout(deadline_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# latency
def test_latency_adds_its_amount_to_an_open_connection_and_goes_away_on_removal(toxiproxy: str,
                                                                                 proxy_port: int) -> None:
    with connect(proxy_port) as sock:
        assert round_trip(sock) < 0.08
        add_toxic(toxiproxy, "latency", latency=150)
        delayed = [round_trip(sock) for _ in range(3)]
        assert all(0.145 <= rtt < 0.145 + 0.15 for rtt in delayed), delayed
        assert api("DELETE", f"{toxiproxy}/proxies/echo/toxics/latency_downstream").status_code == 204
        assert round_trip(sock) < 0.08


def test_latency_applies_to_new_connections_and_upstream_adds_to_downstream(toxiproxy: str,
                                                                            proxy_port: int) -> None:
    add_toxic(toxiproxy, "latency", stream="upstream", latency=100)
    add_toxic(toxiproxy, "latency", stream="downstream", latency=100)
    with connect(proxy_port) as sock:
        rtt = round_trip(sock)
    assert 0.195 <= rtt < 0.2 + 0.15


def test_updating_a_latency_changes_an_open_connection(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "latency", latency=250)
    with connect(proxy_port) as sock:
        assert round_trip(sock) >= 0.245
        response = api("POST", f"{toxiproxy}/proxies/echo/toxics/latency_downstream", {"attributes": {"latency": 40}})
        assert response.status_code == 200
        assert response.json()["attributes"] == {"latency": 40, "jitter": 0}
        assert 0.035 <= round_trip(sock) < 0.2


@pytest.mark.ours_only("Toxiproxy's -seed has no effect")
def test_the_same_seed_gives_the_same_jitter_sequence(toxiproxy: str, proxy_port: int) -> None:
    latency = toxic_type("latency").from_attributes({"latency": 120, "jitter": 100})

    def expected(seed: int) -> list[float]:
        # connection 1 of proxy "echo", the first toxic created on it (serial 1)
        stub = ToxicStub(latency, 1.0, toxic_random(seed, "echo", 1, "downstream", "latency_downstream", 1), None)
        return [latency.delay_ms(stub.rng) / 1000 for _ in range(4)]

    assert expected(7) == expected(7)
    assert expected(7) != expected(8)
    add_toxic(toxiproxy, "latency", latency=120, jitter=100)
    with connect(proxy_port) as sock:
        measured = [round_trip(sock) for _ in range(4)]
    for want, got in zip(expected(7), measured):
        assert want - 0.005 <= got < want + 0.06, (expected(7), measured)


# timeout, reset_peer, limit_data, slow_close
def test_timeout_blackholes_then_closes_after_its_timeout(toxiproxy: str, proxy_port: int) -> None:
    with connect(proxy_port) as sock:
        round_trip(sock)
        added = time.monotonic()
        add_toxic(toxiproxy, "timeout", timeout=400)
        sock.sendall(b"ping")
        sock.settimeout(0.15)
        with pytest.raises(socket.timeout):
            sock.recv(100)  # black hole: nothing comes back
        assert recv_until_eof(sock, 2.0) == b""  # then the proxy closes
        assert 0.38 <= time.monotonic() - added < 1.2


def test_timeout_zero_never_closes_and_removing_it_closes_what_it_held(toxiproxy: str, proxy_port: int) -> None:
    with connect(proxy_port) as held:
        add_toxic(toxiproxy, "timeout", timeout=0)
        held.sendall(b"ping")
        held.settimeout(0.3)
        with pytest.raises(socket.timeout):
            held.recv(100)
        api("DELETE", f"{toxiproxy}/proxies/echo/toxics/timeout_downstream")
        # like Toxiproxy: bytes were dropped, so the held connection is closed rather than resumed
        assert recv_until_eof(held, 2.0) == b""
    with connect(proxy_port) as fresh:
        assert round_trip(fresh) < 0.08


def test_reset_peer_resets_after_data_arrives(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "reset_peer", timeout=100)
    with connect(proxy_port) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            recv_until_eof(sock, 2.0)
        assert time.monotonic() - started >= 0.095


def test_limit_data_closes_after_n_bytes(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "limit_data", bytes=10)
    with connect(proxy_port) as sock:
        sock.sendall(bytes(range(100)))
        assert recv_until_eof(sock, 2.0) == bytes(range(10))


def test_slow_close_holds_the_close_back(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "slow_close", delay=300)
    with connect(proxy_port) as sock:
        round_trip(sock)
        started = time.monotonic()
        sock.shutdown(socket.SHUT_WR)  # the echo server closes in turn; its close is held back
        assert recv_until_eof(sock, 2.0) == b""
        assert 0.295 <= time.monotonic() - started < 1.0


@pytest.mark.ours_only("Toxiproxy closes both directions when one ends")
def test_half_close_passes_the_reply_through(proxy_port: int) -> None:
    with connect(proxy_port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock, 2.0) == b"last words"


# bandwidth, slicer, plain forwarding
def test_bandwidth_slows_a_transfer(toxiproxy: str, proxy_port: int) -> None:
    payload = os.urandom(40_000)
    with connect(proxy_port) as sock:
        fast = round_trip(sock, payload)
        add_toxic(toxiproxy, "bandwidth", rate=100)  # 100 KB/s -> 0.4 s for 40 kB
        slow = round_trip(sock, payload)
        api("DELETE", f"{toxiproxy}/proxies/echo/toxics/bandwidth_downstream")
        fast_again = round_trip(sock, payload)
    assert fast < 0.2 and fast_again < 0.2
    assert 0.35 <= slow < 1.5


def test_slicer_still_delivers_every_byte_in_order(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "slicer", average_size=100, size_variation=40, delay=200)
    payload = os.urandom(20_000)
    with connect(proxy_port) as sock:
        sock.sendall(payload)
        received, reads = b"", 0
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(received)} bytes"
            received, reads = received + chunk, reads + 1
    assert received == payload
    assert reads >= 5  # it did arrive in slices (about 200 of them, some coalesced by the reader)


def test_without_toxics_bulk_data_passes_intact(proxy_port: int) -> None:
    payload = os.urandom(8 << 20)
    with connect(proxy_port, timeout=10) as sock:
        received = bytearray()

        def read() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(payload)
        reader.join(10)
    assert bytes(received) == payload


@pytest.mark.parametrize("listen", ["0.0.0.0", "127.0.0.1"])
def test_a_reply_in_two_pieces_is_not_held_back_by_nagle(toxiproxy: str, listen: str) -> None:
    """An upstream that answers in two writes (as aiohttp does: headers, then body): without TCP_NODELAY on
    the proxy's client side, the second piece waits for the client's delayed ACK, about 40 ms, per reply
    (the cause of the services' 26 s delivery p50 on the small stack)."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer_in_two_pieces() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while conn.recv(64):
                conn.sendall(b"h" * 100)
                time.sleep(0.002)
                conn.sendall(b"b" * 100)

    threading.Thread(target=answer_in_two_pieces, daemon=True).start()
    response = api("POST", f"{toxiproxy}/proxies", {"name": "pieces", "listen": f"{listen}:0",
                                                     "upstream": f"127.0.0.1:{server.getsockname()[1]}"})
    assert response.status_code == 201, response.text
    try:
        with connect(int(response.json()["listen"].rsplit(":", 1)[1])) as sock:
            times = []
            for _ in range(25):
                started = time.monotonic()
                sock.sendall(b"?")
                received = b""
                while len(received) < 200:
                    chunk = sock.recv(4096)
                    assert chunk, "connection closed during a round trip"
                    received += chunk
                times.append(time.monotonic() - started)
        assert sorted(times)[len(times) // 2] < 0.02, f"round trips (s): {sorted(times)}"
    finally:
        server.close()


# toxicity
def test_toxicity_zero_never_applies(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "latency", toxicity=0.0, latency=300)
    for _ in range(5):
        with connect(proxy_port) as sock:
            assert round_trip(sock) < 0.15


@pytest.mark.ours_only("Toxiproxy's toxicity draws are not seeded")
def test_toxicity_is_drawn_per_connection_from_the_seed(toxiproxy: str, proxy_port: int) -> None:
    add_toxic(toxiproxy, "latency", toxicity=0.5, latency=150)
    latency = toxic_type("latency").from_attributes({"latency": 150})
    expected = [ToxicStub(latency, 0.5, toxic_random(7, "echo", n, "downstream", "latency_downstream", 1),
                          None).applies for n in range(1, 9)]
    assert True in expected and False in expected  # the seed gives a mix; otherwise pick another
    measured = []
    for _ in expected:
        with connect(proxy_port) as sock:
            measured.append(round_trip(sock) >= 0.145)
    assert measured == expected


# enable / disable / reset / populate
def test_a_disabled_proxy_refuses_connections_and_reenabling_restores_them(toxiproxy: str, proxy_port: int,
                                                                           echo: Echo) -> None:
    with connect(proxy_port) as open_before:
        round_trip(open_before)
        response = api("POST", f"{toxiproxy}/proxies/echo", {"enabled": False})
        assert response.status_code == 200 and response.json()["enabled"] is False
        with pytest.raises(ConnectionRefusedError):
            connect(proxy_port)
        try:
            assert recv_until_eof(open_before, 2.0) == b""  # existing connections are closed too
        except ConnectionResetError:
            pass
    response = api("PATCH", f"{toxiproxy}/proxies/echo", {"enabled": True})
    assert response.json()["enabled"] is True
    assert response.json()["listen"] == f"127.0.0.1:{proxy_port}"
    with connect(proxy_port) as sock:
        assert round_trip(sock) < 0.08


def test_reset_enables_everything_and_removes_every_toxic(toxiproxy: str, proxy_port: int,
                                                          echo: Echo) -> None:
    other_port = make_proxy(toxiproxy, echo.port, name="other")
    add_toxic(toxiproxy, "latency", latency=300)
    api("POST", f"{toxiproxy}/proxies/other", {"enabled": False})
    with connect(proxy_port) as sock:
        assert round_trip(sock) >= 0.29
        assert api("POST", f"{toxiproxy}/reset").status_code == 204
        assert round_trip(sock) < 0.08  # also on the connection that was open
    proxies = api("GET", f"{toxiproxy}/proxies").json()
    assert {name: (p["enabled"], p["toxics"]) for name, p in proxies.items()} == {
        "echo": (True, []), "other": (True, [])}
    with connect(other_port) as sock:
        round_trip(sock)


def test_populate_creates_keeps_and_replaces(toxiproxy: str, proxy_port: int, echo: Echo) -> None:
    add_toxic(toxiproxy, "latency", latency=10)
    body = [
        {"name": "echo", "listen": f"127.0.0.1:{proxy_port}", "upstream": f"127.0.0.1:{echo.port}"},  # unchanged
        {"name": "fresh", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}"},
        {"name": "idle", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "enabled": False},
    ]
    response = api("POST", f"{toxiproxy}/populate", body)
    assert response.status_code == 201
    proxies = {p["name"]: p for p in response.json()["proxies"]}
    assert set(proxies) == {"echo", "fresh", "idle"}
    assert [t["name"] for t in proxies["echo"]["toxics"]] == ["latency_downstream"]  # kept as it was
    assert proxies["idle"]["enabled"] is False
    with connect(int(proxies["fresh"]["listen"].rsplit(":", 1)[1])) as sock:
        round_trip(sock)

    body[0]["upstream"] = f"127.0.0.1:{echo.port + 0}"
    body[0]["listen"] = "127.0.0.1:0"  # changed: replaced, toxics gone
    replaced = {p["name"]: p for p in api("POST", f"{toxiproxy}/populate", body[:1]).json()["proxies"]}
    assert replaced["echo"]["toxics"] == [] and replaced["echo"]["listen"] != f"127.0.0.1:{proxy_port}"

    bad = api("POST", f"{toxiproxy}/populate", [{"name": "x", "listen": "127.0.0.1:0"}])
    assert bad.status_code == 400 and "upstream" in bad.json()["error"]


def test_deleting_a_proxy_closes_its_listener(toxiproxy: str, proxy_port: int) -> None:
    assert api("DELETE", f"{toxiproxy}/proxies/echo").status_code == 204
    with pytest.raises(ConnectionRefusedError):
        connect(proxy_port)
    assert api("GET", f"{toxiproxy}/proxies/echo").status_code == 404


def test_an_unreachable_upstream_closes_the_client(toxiproxy: str) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    dead_port = free.getsockname()[1]
    free.close()
    port = make_proxy(toxiproxy, dead_port, name="dead")
    with connect(port) as sock:
        try:
            assert recv_until_eof(sock, 2.0) == b""
        except ConnectionResetError:
            pass


# the API's answers, as Toxiproxy's
@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("GET", "/proxies/nope", None, 404, "proxy not found"),
    ("DELETE", "/proxies/nope", None, 404, "proxy not found"),
    ("POST", "/proxies/nope/toxics", {"type": "latency"}, 404, "proxy not found"),
    ("GET", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
    ("DELETE", "/proxies/echo/toxics/nope", None, 404, "toxic not found"),
    ("POST", "/proxies/echo/toxics/nope", {"attributes": {}}, 404, "toxic not found"),
    ("POST", "/proxies", {"name": "echo", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}, 409,
     "proxy already exists"),
    ("POST", "/proxies", {"name": "x", "listen": "127.0.0.1:0"}, 400, "missing required field: upstream"),
    ("POST", "/proxies", {"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ("POST", "/proxies/echo/toxics", {"type": "earthquake"}, 400, "invalid toxic type"),
    ("POST", "/proxies/echo/toxics", {"type": "latency", "stream": "sideways"}, 400,
     "stream was invalid, can be either upstream or downstream"),
    ("POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": "slow"}}, 400,
     "bad request body"),
    ("POST", "/proxies/echo/toxics", {"type": "latency", "toxicity": "high"}, 400, "bad request body"),
    pytest.param("POST", "/proxies/echo/toxics", {"type": "slicer"}, 400, "bad request body",
                 marks=pytest.mark.ours_only("Toxiproxy accepts a slicer of average_size 0 (and panics on data)")),
])
def test_api_errors_match_toxiproxy(toxiproxy: str, proxy_port: int, method: str, path: str, body: object,
                                    status: int, error: str) -> None:
    response = api(method, toxiproxy + path, body)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    assert response.json()["error"].startswith(error)


def test_api_rejects_a_body_that_is_not_json_and_a_duplicate_toxic(toxiproxy: str, proxy_port: int) -> None:
    response = requests.post(f"{toxiproxy}/proxies", data=b"{not json", timeout=3)
    assert response.status_code == 400 and response.json()["error"].startswith("bad request body")
    first = add_toxic(toxiproxy, "latency", latency=1)
    assert first == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                     "toxicity": 1.0, "attributes": {"latency": 1, "jitter": 0}}
    again = api("POST", f"{toxiproxy}/proxies/echo/toxics", {"type": "latency"})
    assert again.status_code == 409 and again.json()["error"] == "toxic already exists"
    listing = api("GET", f"{toxiproxy}/proxies/echo/toxics").json()
    assert listing == [first]


def test_version_and_unknown_routes(toxiproxy: str) -> None:
    assert api("GET", f"{toxiproxy}/version").json()["version"].startswith("2.")
    assert api("GET", f"{toxiproxy}/nowhere").status_code == 404
    assert api("PUT", f"{toxiproxy}/proxies").status_code == 405


# the command line
def test_cli_populates_from_config_answers_and_stops_on_sigterm(tmp_path: Path, echo: Echo) -> None:
    config = tmp_path / "populate.json"
    config.write_text(json.dumps([{"name": "echo", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}"}]))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "faults.toxiproxy.server", "--host", "127.0.0.1", "--port", str(port),
         "--seed", "3", "--config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        give_up = time.monotonic() + 10
        while True:
            try:
                proxies = requests.get(f"http://127.0.0.1:{port}/proxies", timeout=1).json()
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < give_up, "server did not answer within 10s"
                time.sleep(0.05)
        assert proxies["echo"]["enabled"] is True
        with connect(int(proxies["echo"]["listen"].rsplit(":", 1)[1])) as sock:
            round_trip(sock)
        process.terminate()
        output, _ = process.communicate(timeout=5)
        assert process.returncode == 0
        assert "seed=3" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_cli_bad_config_is_one_line_and_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "broken.json"
    config.write_text("[{")
    result = subprocess.run(
        [sys.executable, "-m", "faults.toxiproxy.server", "--port", str(free_port()), "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "broken.json" in result.stderr
