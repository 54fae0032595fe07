"""The Toxiproxy client against the in-process server: every call, and every failure as one HarnessError line."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from faults.toxiproxy.client import ToxiproxyClient
from faults.toxiproxy.server import serve_in_thread
from harness.errors import HarnessError
from tests.toxiproxy_servers import SERVERS, free_port, running_server


@pytest.fixture(params=SERVERS)
def client(request: pytest.FixtureRequest) -> Iterator[ToxiproxyClient]:
    """Ours, and a real Toxiproxy too when TOXIPROXY_SERVER names one: the harness's client speaks to both."""
    with running_server(request.param) as url, ToxiproxyClient(url, timeout=2.0) as toxiproxy:
        yield toxiproxy


def one_line(error: pytest.ExceptionInfo[HarnessError]) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_proxy_lifecycle(client: ToxiproxyClient) -> None:
    assert client.version().startswith("2.")
    created = client.create_proxy("redis", "127.0.0.1:0", "127.0.0.1:6379")
    assert created["enabled"] is True and created["toxics"] == []
    assert created["listen"].startswith("127.0.0.1:") and not created["listen"].endswith(":0")
    assert client.get_proxy("redis") == created
    assert list(client.proxies()) == ["redis"]
    assert client.set_enabled("redis", False)["enabled"] is False
    assert client.set_enabled("redis", True)["enabled"] is True
    client.delete_proxy("redis")
    assert client.proxies() == {}


def test_toxic_lifecycle(client: ToxiproxyClient) -> None:
    client.create_proxy("amqp", "127.0.0.1:0", "127.0.0.1:5672")
    toxic = client.add_toxic("amqp", "latency", latency=100, jitter=10)
    assert toxic == {"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
                     "attributes": {"latency": 100, "jitter": 10}}
    named = client.add_toxic("amqp", "timeout", stream="upstream", toxicity=0.5, name="cut", timeout=0)
    assert (named["name"], named["stream"], named["toxicity"]) == ("cut", "upstream", 0.5)
    updated = client.update_toxic("amqp", "latency_downstream", latency=300)
    assert updated["attributes"] == {"latency": 300, "jitter": 10}  # jitter kept
    assert client.update_toxic("amqp", "cut", toxicity=0.25)["toxicity"] == 0.25
    assert {t["name"] for t in client.toxics("amqp")} == {"latency_downstream", "cut"}
    client.remove_toxic("amqp", "cut")
    assert [t["name"] for t in client.toxics("amqp")] == ["latency_downstream"]
    client.set_enabled("amqp", False)
    client.reset()
    proxy = client.get_proxy("amqp")
    assert proxy["enabled"] is True and proxy["toxics"] == []


def test_populate_returns_the_proxies(client: ToxiproxyClient) -> None:
    proxies = client.populate([
        {"name": "zk", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2181"},
        {"name": "redis", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:6379", "enabled": False},
    ])
    assert [(p["name"], p["enabled"]) for p in proxies] == [("zk", True), ("redis", False)]
    assert set(client.proxies()) == {"zk", "redis"}


@pytest.mark.parametrize(("call", "status", "reason"), [
    (lambda c: c.get_proxy("ghost"), "404", "proxy not found"),
    (lambda c: c.remove_toxic("p", "ghost"), "404", "toxic not found"),
    (lambda c: c.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1"), "409", "proxy already exists"),
    (lambda c: c.add_toxic("p", "latency", latency=1) and c.add_toxic("p", "latency"), "409",
     "toxic already exists"),
    (lambda c: c.add_toxic("p", "earthquake"), "400", "invalid toxic type"),
    (lambda c: c.add_toxic("p", "latency", stream="sideways"), "400", "stream was invalid"),
    (lambda c: c._call("GET", "/nowhere"), "404", "404 page not found"),
])
def test_api_errors_become_one_readable_line(client: ToxiproxyClient, call, status: str, reason: str) -> None:
    client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:1")
    with pytest.raises(HarnessError) as error:
        call(client)
    message = one_line(error)
    assert f"-> {status}: {reason}" in message


def test_names_are_quoted_into_paths(client: ToxiproxyClient) -> None:
    # No "/" in names: Toxiproxy's router matches the decoded path, so such a proxy cannot be addressed there.
    client.create_proxy("a b%c?", "127.0.0.1:0", "127.0.0.1:1")
    assert client.get_proxy("a b%c?")["name"] == "a b%c?"
    client.add_toxic("a b%c?", "latency", name="x y#", latency=1)
    client.remove_toxic("a b%c?", "x y#")


def test_an_unreachable_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(HarnessError) as error:
        ToxiproxyClient(url, timeout=1.0).proxies()
    message = one_line(error)
    assert url in message and "unreachable" in message and "GET /proxies" in message


@pytest.fixture()
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hung or paused Toxiproxy."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    for conn in held:
        conn.close()


def test_every_call_has_a_timeout(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(HarnessError) as error:
        ToxiproxyClient(silent_server, timeout=0.3).add_toxic("redis", "latency", latency=1)
    assert time.monotonic() - started < 2.0
    assert "did not answer POST /proxies/redis/toxics within 0.3s" in one_line(error)


def test_wait_ready_says_what_it_waited_for(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(HarnessError) as error:
        ToxiproxyClient(silent_server, timeout=0.2).wait_ready(0.5)
    assert time.monotonic() - started < 2.5
    message = one_line(error)
    assert "did not answer GET /version within 0.5s" in message and silent_server in message


def test_wait_ready_returns_once_the_server_answers() -> None:
    with serve_in_thread() as running:
        assert ToxiproxyClient(running.url).wait_ready(5.0).startswith("2.")



def test_server_features_are_ours_and_a_real_toxiproxy_has_none(request: pytest.FixtureRequest,
                                                                 client: ToxiproxyClient) -> None:
    features = client.server_features()
    if request.node.callspec.params["client"] == "real":
        assert features == frozenset()  # 404 at /faults/server
    else:
        assert {"seeded-randomness", "half-close", "reset-peer-on-open-connections"} <= features


class _Client:
    url = "http://proxy:8474"

    def __init__(self, features: frozenset[str]) -> None:
        self.features = features

    def server_features(self) -> frozenset[str]:
        return self.features


def test_a_fault_that_needs_what_real_toxiproxy_lacks_says_so() -> None:
    from faults.link import ResetPeer

    with pytest.raises(HarnessError) as error:
        ResetPeer.check_proxy(_Client(frozenset()))
    message = one_line(error)
    assert message.startswith("reset-peer: ") and "'reset-peer-on-open-connections'" in message
    ResetPeer.check_proxy(_Client(frozenset({"reset-peer-on-open-connections"})))  # ours: no complaint


class _Stack:
    """Just enough of a Stack for a fault's check_stack: the proxy's API port."""

    def __init__(self, port: int) -> None:
        self.port = port

    def host_port(self, node: str, port: int) -> int:
        assert node == "proxy"
        return self.port


def test_check_stack_asks_the_stacks_proxy_before_a_run() -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from faults.link import Latency, ResetPeer

    class RealLike(BaseHTTPRequestHandler):  # a real Toxiproxy: nothing at /faults/server
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    real_like = HTTPServer(("127.0.0.1", 0), RealLike)
    threading.Thread(target=real_like.serve_forever, daemon=True).start()
    try:
        with pytest.raises(HarnessError) as error:
            ResetPeer.check_stack(_Stack(real_like.server_address[1]))
        assert one_line(error).startswith("reset-peer: the proxy at http://127.0.0.1:")
        Latency.check_stack(_Stack(real_like.server_address[1]))  # needs nothing beyond Toxiproxy
    finally:
        real_like.shutdown()
        real_like.server_close()
    with serve_in_thread() as ours:
        ResetPeer.check_stack(_Stack(ours.server.port))
