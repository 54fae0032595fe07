"""The proxy's API loop: HTTP parsed from any split of the bytes, the API served without asyncio while the
compiled data path carries every proxy, and handed to asyncio, mid-connection, by the first toxic."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faults.toxiproxy.api import SERVER_INFO_PATH
from faults.toxiproxy.httpd import BadRequest, HttpConnection, Request
from tests.native import unavailable
from tests.toxiproxy_servers import PUMP_BUILT, Echo, free_port, round_trip

REPO = Path(__file__).resolve().parents[2]


# HTTP without I/O
def request_bytes(method: str, path: str, body: bytes, chunked: bool, close: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n" + ("Connection: close\r\n" if close else "")
    if chunked:
        pieces = [body[i:i + 3] for i in range(0, len(body), 3)]
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + encoded
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def parse_all(connection: HttpConnection) -> list[tuple[str, str, bytes]]:
    out = []
    while (request := connection.next_request()) is not None:
        out.append((request.method, request.path, request.body))
    return out


requests_st = st.lists(st.tuples(st.sampled_from(["GET", "POST", "DELETE"]),
                                 st.from_regex(r"/[a-z]{1,8}(/[a-z0-9]{1,5})?", fullmatch=True),
                                 st.binary(max_size=40), st.booleans()), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(requests_st, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_split_of_the_bytes_gives_the_same_requests(requests: list[tuple[str, str, bytes, bool]],
                                                        cuts: list[int]) -> None:
    stream = b"".join(request_bytes(m, p, b, c) for m, p, b, c in requests)
    whole = HttpConnection()
    whole.feed(stream)
    expected = [(m, p, b) for m, p, b, _ in requests]
    assert parse_all(whole) == expected and not whole.buffer

    pieces = HttpConnection()
    got = []
    start = 0
    for cut in sorted({min(c, len(stream)) for c in cuts} | {len(stream)}):
        pieces.feed(stream[start:cut])
        start = cut
        got.extend(parse_all(pieces))
    assert got == expected


def test_an_unterminated_request_at_eof_is_answered_and_a_cut_body_is_dropped() -> None:
    connection = HttpConnection()
    connection.feed(b"GET /version HTTP/1.0\r\nHost: x")  # a client that shut down its side early
    assert connection.next_request() is None
    connection.feed_eof()
    request = connection.next_request()
    assert isinstance(request, Request) and request.path == "/version" and request.headers == {"host": "x"}
    assert connection.finished
    cut = HttpConnection()
    cut.feed(b"POST /proxies HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\"")
    cut.feed_eof()
    assert cut.next_request() is None and cut.finished


def test_keep_alive_and_close_follow_the_version_and_the_header() -> None:
    connection = HttpConnection()
    connection.feed(request_bytes("GET", "/a", b"", False) + b"GET /b HTTP/1.0\r\n\r\n")
    from faults.toxiproxy.httpd import Response

    first = connection.next_request()
    assert first is not None and b"Connection: keep-alive" in connection.answer(first, Response(200, b"{}"))
    assert not connection.closing
    second = connection.next_request()
    assert second is not None and b"HTTP/1.0 200 OK" in connection.answer(second, Response(200, b"{}"))
    assert connection.closing and connection.finished


@pytest.mark.parametrize("raw, message", [
    (b"NONSENSE\r\n\r\n", "malformed request line"),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header"),
    (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad content-length"),
    (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", "too many headers"),
    (b"GET /" + b"a" * (70 << 10), "line too long"),
])
def test_malformed_requests_are_refused_with_a_400_and_a_close(raw: bytes, message: str) -> None:
    connection = HttpConnection()
    connection.feed(raw)
    with pytest.raises(BadRequest, match=message) as caught:
        connection.next_request()
    answer = connection.bad_request(caught.value)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in answer
    assert connection.finished


# the process: selectors first, asyncio from the first toxic on
class Api:
    """One keep-alive connection to the API, raw, so that requests can be pipelined and cut anywhere."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, object]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next((int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")), 0)
        while len(rest) < length:
            rest += self._recv()
        body, self.buffer = rest[:length], rest[length:]
        return int(lines[0].split()[1]), json.loads(body) if body.strip().startswith((b"{", b"[")) else body

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        self.send(call_bytes(method, path, body))
        return self.response()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, "the API closed a keep-alive connection"
        return data


def call_bytes(method: str, path: str, body: object = None) -> bytes:
    return request_bytes(method, path, b"" if body is None else json.dumps(body).encode(), False)


@pytest.fixture()
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@contextlib.contextmanager
def server_process(native: str | None, max_files: int = 0) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CHAOS_PROXY_NATIVE"}
    if native is not None:
        env["CHAOS_PROXY_NATIVE"] = native
    process = subprocess.Popen([sys.executable, "-m", "faults.toxiproxy.server", "-host", "127.0.0.1",
                                "-port", str(port), "-seed", "5"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files)))
                               if max_files else None)
    try:
        give_up = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < give_up, "the server did not listen within 10s"
                time.sleep(0.05)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def asyncio_loaded(pid: int) -> bool:
    """Whether the process has loaded asyncio's C part (a file of its own in lib-dynload)."""
    return "_asyncio" in Path(f"/proc/{pid}/maps").read_text()


def test_the_api_runs_without_asyncio_until_a_toxic_and_then_hands_over_mid_connection(echo: Echo) -> None:
    if not PUMP_BUILT:
        unavailable("the proxy's compiled data path (faults/toxiproxy/_pump, scripts/build-native)")
    with server_process(None) as (process, port):
        api = Api(port)
        status, info = api.call("GET", SERVER_INFO_PATH)
        assert status == 200 and info["data_path"] == "compiled" and info["api_loop"] == "selectors"  # type: ignore[index]
        status, proxy = api.call("POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0",
                                                      "upstream": f"127.0.0.1:{echo.port}"})
        assert status == 201, proxy
        proxy_port = int(proxy["listen"].rsplit(":", 1)[1])  # type: ignore[index]
        held = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)  # the pump's, until the toxic
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
                round_trip(sock)
        round_trip(held)
        assert not asyncio_loaded(process.pid), "asyncio was loaded before any toxic"

        # One write: the toxic that brings asyncio in, a request pipelined behind it, and half a third one.
        third = call_bytes("GET", "/version")
        api.send(call_bytes("POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 1}})
                 + call_bytes("GET", SERVER_INFO_PATH) + third[:9])
        status, toxic = api.response()
        assert status == 200 and toxic["type"] == "latency", toxic  # type: ignore[index]
        status, info = api.response()
        assert status == 200 and info["api_loop"] == "asyncio"  # type: ignore[index]
        api.send(third[9:])
        assert api.response() == (200, {"version": "2.12.0"})
        assert asyncio_loaded(process.pid)

        round_trip(held)  # the pump's connection, carried on by Python's link
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
            round_trip(sock)
        assert api.call("DELETE", "/proxies/p/toxics/latency_downstream")[0] == 204
        round_trip(held)
        held.close()

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
        assert process.returncode == 0, output
        assert output.count("the API moves onto asyncio") == 1, output


@pytest.mark.parametrize("native", ["0", None])
def test_sigterm_stops_the_server_on_either_loop_with_an_idle_api_connection_open(native: str | None) -> None:
    if native is None and not PUMP_BUILT:
        unavailable("the proxy's compiled data path (faults/toxiproxy/_pump, scripts/build-native)")
    with server_process(native) as (process, port):
        api = Api(port)
        status, info = api.call("GET", SERVER_INFO_PATH)
        assert status == 200
        assert info["api_loop"] == ("asyncio" if native == "0" else "selectors")  # type: ignore[index]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
        assert process.returncode == 0, output
        assert api.sock.recv(10) == b""  # the API's connections are closed on the way out
        api.sock.close()


def test_a_client_that_sends_nothing_does_not_hold_the_api_up() -> None:
    with server_process(None) as (process, port):
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(b"GET /version HTTP/1.1\r\nHost:")
        api = Api(port)
        assert api.call("GET", "/version") == (200, {"version": "2.12.0"})
        half.sendall(b" x\r\n\r\n")
        half.settimeout(5)
        assert half.recv(200).startswith(b"HTTP/1.1 200 OK")
        for sock in (silent, half, api.sock):
            sock.close()
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_the_api_rests_instead_of_spinning_and_recovers() -> None:
    with server_process(None, max_files=24) as (process, port):
        api = Api(port)
        assert api.call("GET", "/version")[0] == 200
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]  # some wait in the backlog
        give_up = time.monotonic() + 10
        while "accept failed" not in (line := process.stdout.readline()):  # type: ignore[union-attr]
            assert line and time.monotonic() < give_up, "no accept failed with 24 file descriptors"
        before = cpu_seconds(process.pid)
        started = time.monotonic()
        assert api.call("GET", "/version")[0] == 200  # what is open is still served
        time.sleep(1.5)  # a measured interval, not a wait for a condition: a spinning loop burns all of it
        used = cpu_seconds(process.pid) - before
        assert used < 0.5 * (time.monotonic() - started), f"the API loop used {used:.2f}s of CPU while out of fds"
        for sock in crowd:
            sock.close()
        late = Api(port)
        assert late.call("GET", "/version") == (200, {"version": "2.12.0"})  # accepted once fds are free again
        late.sock.close()
        api.sock.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_a_stop_that_comes_with_the_first_toxic_stops_its_links_on_asyncio(echo: Echo) -> None:
    if not PUMP_BUILT:
        unavailable("the proxy's compiled data path (faults/toxiproxy/_pump, scripts/build-native)")
    from faults.toxiproxy.control import run_now
    from faults.toxiproxy.server import ToxiproxyServer

    server = ToxiproxyServer(seed=1)
    server.start("127.0.0.1", 0)
    proxy = run_now(server.proxies.create({"name": "p", "listen": "127.0.0.1:0",
                                           "upstream": f"127.0.0.1:{echo.port}"}))
    with socket.create_connection(("127.0.0.1", int(proxy.listen.rsplit(":", 1)[1])), timeout=5) as held:
        round_trip(held)  # the pump carries it
        proxy.toxics.add({"type": "latency", "attributes": {"latency": 1}})  # hands it to a link on asyncio
        server.stop()  # before the API loop has seen the toxic
        server.run()  # returns: the link is stopped on its loop, not from outside it
        assert held.recv(10) == b""
    assert server.loops.made and server.loops.get().is_closed()
