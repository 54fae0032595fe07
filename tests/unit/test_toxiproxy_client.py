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


@pytest.fixture()
def client() -> Iterator[ToxiproxyClient]:
    with serve_in_thread(seed=1) as running, ToxiproxyClient(running.url, timeout=2.0) as toxiproxy:
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
    client.create_proxy("a b/c", "127.0.0.1:0", "127.0.0.1:1")
    assert client.get_proxy("a b/c")["name"] == "a b/c"
    client.add_toxic("a b/c", "latency", name="x/y", latency=1)
    client.remove_toxic("a b/c", "x/y")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
