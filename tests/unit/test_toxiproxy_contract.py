"""Contract: our proxy server answers as Toxiproxy 2.12 does, where its clients can tell the difference.

Each test pins one item of issue #19, written from Toxiproxy's source (api.go, proxy.go, toxics/, metrics.go)
and from answers of a real v2.12.0 server: status, field, header and error text. No Docker: the server runs
in-process in front of a local echo server; every wait has a deadline.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Iterator

import pytest
import requests

from faults.toxiproxy.metrics import Metrics, go_float
from faults.toxiproxy.server import parse_args, serve_in_thread
from tests.toxiproxy_servers import SERVERS, Echo, running_server
from tests.toxiproxy_servers import round_trip as round_trip_on


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@pytest.fixture(params=SERVERS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Ours; and with TOXIPROXY_SERVER set, the same contract is checked on the real server too."""
    with running_server(request.param, seed=3) as running:
        yield running


@pytest.fixture()
def our_url() -> Iterator[str]:
    with serve_in_thread(seed=3) as running:
        yield running.url


def call(method: str, url: str, body: object = None) -> requests.Response:
    return requests.request(method, url, json=body, timeout=3)


def create(url: str, body: dict) -> requests.Response:
    return call("POST", f"{url}/proxies", body)


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def round_trip(port: int, payload: bytes = b"ping") -> float:
    """One round trip on a new connection to `port` (the shared `round_trip` on an open one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return round_trip_on(sock, payload)


def ipv6_dual_stack() -> bool:
    """Whether this machine can listen on "::" (Go, and we, then answer "[::]:N" for a wildcard)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::", 0))
        return True
    except OSError:
        return False


WILDCARD = "[::]" if ipv6_dual_stack() else "0.0.0.0"


# 1. null is lenient: toxiproxy-ruby sends "enabled": nil on every create
def test_null_enabled_creates_an_enabled_proxy(url: str, echo: Echo) -> None:
    response = create(url, {"name": "ruby", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}",
                            "enabled": None})
    assert response.status_code == 201, response.text
    assert response.json()["enabled"] is True
    round_trip(port_of(response.json()["listen"]))
    populated = call("POST", f"{url}/populate", [{"name": "pop", "listen": "127.0.0.1:0",
                                                  "upstream": f"127.0.0.1:{echo.port}", "enabled": None}])
    assert populated.status_code == 201 and populated.json()["proxies"][0]["enabled"] is True
    updated = call("PATCH", f"{url}/proxies/ruby", {"enabled": None, "listen": None})
    assert updated.status_code == 200 and updated.json()["enabled"] is True
    assert updated.json()["listen"] == response.json()["listen"]


def test_null_toxic_fields_take_their_defaults(url: str, echo: Echo) -> None:
    create(url, {"name": "p", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}"})
    response = call("POST", f"{url}/proxies/p/toxics", {"type": "latency", "stream": None, "toxicity": None,
                                                         "name": None, "attributes": {"latency": 1}})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                               "toxicity": 1, "attributes": {"latency": 1, "jitter": 0}}


# 2. and 9. /version is exactly Toxiproxy's; our own facts live at an address of our own
def test_version_is_byte_for_byte_toxiproxys(url: str) -> None:
    response = call("GET", f"{url}/version")
    assert response.status_code == 200
    assert response.content == b'{"version": "2.12.0"}\n'
    assert response.headers["Content-Type"] == "application/json;charset=utf-8"


def test_seed_and_implementation_are_under_our_own_path(our_url: str) -> None:
    info = call("GET", f"{our_url}/faults/server").json()
    assert info["seed"] == 3 and info["implementation"].startswith("faults.toxiproxy")


# 3. toxics are a pipeline: each adds its own effect, in order
def test_two_latency_toxics_on_one_stream_add_up(url: str, echo: Echo) -> None:
    port = port_of(create(url, {"name": "p", "listen": "127.0.0.1:0",
                                "upstream": f"127.0.0.1:{echo.port}"}).json()["listen"])
    for name in ("first", "second"):
        response = call("POST", f"{url}/proxies/p/toxics",
                        {"name": name, "type": "latency", "attributes": {"latency": 100}})
        assert response.status_code == 200, response.text
    elapsed = round_trip(port)
    assert 0.19 <= elapsed < 1.0, f"two 100 ms latencies gave {elapsed:.3f}s; Toxiproxy gives 0.20s"


def test_latency_and_noop_and_upstream_latency_compose(url: str, echo: Echo) -> None:
    port = port_of(create(url, {"name": "p", "listen": "127.0.0.1:0",
                                "upstream": f"127.0.0.1:{echo.port}"}).json()["listen"])
    for body in ({"name": "n", "type": "noop"},
                 {"name": "down", "type": "latency", "attributes": {"latency": 60}},
                 {"name": "up", "type": "latency", "stream": "upstream", "attributes": {"latency": 60}},
                 {"name": "up2", "type": "latency", "stream": "upstream", "attributes": {"latency": 60}}):
        assert call("POST", f"{url}/proxies/p/toxics", body).status_code == 200
    elapsed = round_trip(port)
    assert 0.175 <= elapsed < 1.0, f"three 60 ms latencies gave {elapsed:.3f}s"


# 4. listen is answered as Go's listener resolves it
def test_listen_is_resolved_in_create_get_and_populate(url: str, echo: Echo) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    created = create(url, {"name": "named", "listen": f"localhost:{free}", "upstream": f"localhost:{echo.port}"})
    assert created.status_code == 201
    assert created.json()["listen"] == f"127.0.0.1:{free}"
    assert created.json()["upstream"] == f"localhost:{echo.port}"  # upstream stays as given
    assert call("GET", f"{url}/proxies/named").json()["listen"] == f"127.0.0.1:{free}"
    assert call("GET", f"{url}/proxies").json()["named"]["listen"] == f"127.0.0.1:{free}"
    populated = call("POST", f"{url}/populate", [{"name": "named", "listen": f"localhost:{free}",
                                                  "upstream": f"localhost:{echo.port}"}])
    assert populated.json()["proxies"][0]["listen"] == f"127.0.0.1:{free}"
    round_trip(free)


def test_empty_listen_is_the_wildcard_and_disabled_without_listen_is_empty(url: str, echo: Echo) -> None:
    empty = create(url, {"name": "empty", "listen": "", "upstream": f"127.0.0.1:{echo.port}"}).json()
    assert re.fullmatch(re.escape(WILDCARD) + r":[1-9]\d*", empty["listen"]), empty["listen"]
    round_trip(port_of(empty["listen"]))
    wildcard = create(url, {"name": "any", "listen": "0.0.0.0:0", "upstream": f"127.0.0.1:{echo.port}"}).json()
    assert wildcard["listen"].startswith(WILDCARD + ":")
    disabled = create(url, {"name": "off", "upstream": f"127.0.0.1:{echo.port}", "enabled": False}).json()
    assert disabled["listen"] == "" and disabled["enabled"] is False


# 5. a port in use: Go's words
def test_port_conflict_is_reported_in_gos_words(url: str, echo: Echo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        response = create(url, {"name": "clash", "listen": f"localhost:{port}", "upstream": f"127.0.0.1:{echo.port}"})
    assert response.status_code == 500
    assert response.json() == {"error": f"listen tcp 127.0.0.1:{port}: bind: address already in use",
                               "status": 500}
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"  # Go's http.Error


# 6. noop is a toxic type
def test_noop_toxic_is_accepted(url: str, echo: Echo) -> None:
    create(url, {"name": "p", "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}"})
    response = call("POST", f"{url}/proxies/p/toxics", {"type": "noop"})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "noop_downstream", "type": "noop", "stream": "downstream",
                               "toxicity": 1, "attributes": {}}
    assert list(response.json()) == ["attributes", "name", "type", "stream", "toxicity"]  # Go's field order


# 7. every routed request carries an id
def test_routed_answers_carry_a_request_id(url: str) -> None:
    ids = [call("GET", f"{url}/version").headers.get("X-Toxiproxy-Request-Id") for _ in range(3)]
    ids.append(call("GET", f"{url}/proxies/missing").headers.get("X-Toxiproxy-Request-Id"))
    for request_id in ids:
        assert request_id is not None and re.fullmatch(r"[0-9a-v]{20}", request_id), request_id
    assert len(set(ids)) == 4
    assert "X-Toxiproxy-Request-Id" not in call("GET", f"{url}/no/such/route").headers  # as gorilla/mux
    wrong_method = call("PUT", f"{url}/proxies")
    assert wrong_method.status_code == 405 and "Content-Type" not in wrong_method.headers


# 8. metrics
def test_metrics_flags_are_accepted_the_way_go_spells_them() -> None:
    args = parse_args(["-proxy-metrics", "-runtime-metrics=false", "-host=0.0.0.0"])
    assert args.proxy_metrics is True and args.runtime_metrics is False and args.host == "0.0.0.0"
    assert parse_args([]).proxy_metrics is False


def test_version_flag_prints_toxiproxys_line(capsys: pytest.CaptureFixture[str]) -> None:
    from faults.toxiproxy.server import main

    assert main(["-version"]) == 0
    assert capsys.readouterr().out == "toxiproxy-server version 2.12.0\n"


def test_metrics_is_404_unless_asked_for(url: str) -> None:
    response = call("GET", f"{url}/metrics")
    assert response.status_code == 404 and response.text == "404 page not found\n"


def test_proxy_metrics_count_bytes_per_direction_in_prometheus_text(echo: Echo) -> None:
    with serve_in_thread(seed=1, metrics=Metrics(proxy_metrics=True, runtime_metrics=True)) as running:
        created = create(running.url, {"name": "m", "listen": "127.0.0.1:0",
                                       "upstream": f"localhost:{echo.port}"}).json()
        round_trip(port_of(created["listen"]), b"hello")
        labels = f'listener="{created["listen"]}",proxy="m",upstream="localhost:{echo.port}"'
        expected = [
            "# HELP toxiproxy_proxy_received_bytes_total ",
            "# TYPE toxiproxy_proxy_received_bytes_total counter",
            f'toxiproxy_proxy_received_bytes_total{{direction="downstream",{labels}}} 5',
            f'toxiproxy_proxy_received_bytes_total{{direction="upstream",{labels}}} 5',
            "# HELP toxiproxy_proxy_sent_bytes_total ",
            "# TYPE toxiproxy_proxy_sent_bytes_total counter",
            f'toxiproxy_proxy_sent_bytes_total{{direction="downstream",{labels}}} 5',
            f'toxiproxy_proxy_sent_bytes_total{{direction="upstream",{labels}}} 5',
        ]
        give_up = time.monotonic() + 3
        while True:
            response = call("GET", f"{running.url}/metrics")
            lines = response.text.splitlines()
            start = lines.index(expected[0]) if expected[0] in lines else -1
            if start >= 0 and lines[start:start + len(expected)] == expected:
                break
            assert time.monotonic() < give_up, response.text
            time.sleep(0.02)
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert re.search(r"^process_resident_memory_bytes \d", response.text, re.M)
        assert re.search(r"^process_cpu_seconds_total [\d.e+]+$", response.text, re.M)


def test_numbers_are_spelled_as_go_spells_them() -> None:
    assert [go_float(v) for v in (10, 0.5, 1.0940416e7, 123456, 1e-05)] == \
        ["10", "0.5", "1.0940416e+07", "123456", "1e-05"]


# 9. the slicer keeps Toxiproxy's pace: a 64 KB answer in 64 B slices 10 µs apart takes Toxiproxy 0.25 s
def test_slicer_with_microsecond_delays_is_not_slower_than_toxiproxy(url: str) -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(1)

    def answer() -> None:
        conn, _ = upstream.accept()
        with conn:
            conn.recv(16)
            conn.sendall(b"x" * 65536)

    threading.Thread(target=answer, daemon=True).start()
    try:
        port = port_of(create(url, {"name": "s", "listen": "127.0.0.1:0",
                                    "upstream": f"127.0.0.1:{upstream.getsockname()[1]}"}).json()["listen"])
        call("POST", f"{url}/proxies/s/toxics",
             {"type": "slicer", "attributes": {"average_size": 64, "size_variation": 0, "delay": 10}})
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"go")
            received = 0
            while data := sock.recv(65536):
                received += len(data)
            elapsed = time.monotonic() - started
    finally:
        upstream.close()
    assert received == 65536
    assert elapsed < 0.5, f"64 KB through the slicer took {elapsed:.2f}s; Toxiproxy takes 0.25s"


# 10. a proxy is written with all of Toxiproxy 2.12's fields, in its order, and the index is by name
def test_a_proxy_carries_toxiproxys_fields_and_the_index_is_sorted_by_name(url: str, echo: Echo) -> None:
    for name in ("zeta", "alpha", "mid"):
        created = create(url, {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo.port}"})
        assert list(created.json()) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"], created.text
        assert created.json()["Logger"] == {}
    index = call("GET", f"{url}/proxies")
    assert list(index.json()) == ["alpha", "mid", "zeta"]  # Go writes a map's keys sorted
    assert index.text.index('"alpha"') < index.text.index('"mid"') < index.text.index('"zeta"')


# 11. toxicity is any number: above 1 the toxic always applies, below 0 never; a string is still refused
def test_toxicity_outside_zero_to_one_is_taken_as_toxiproxy_takes_it(url: str, echo: Echo) -> None:
    port = port_of(create(url, {"name": "p", "listen": "127.0.0.1:0",
                                "upstream": f"127.0.0.1:{echo.port}"}).json()["listen"])
    above = call("POST", f"{url}/proxies/p/toxics",
                 {"name": "above", "type": "latency", "toxicity": 1.5, "attributes": {"latency": 200}})
    below = call("POST", f"{url}/proxies/p/toxics",
                 {"name": "below", "type": "latency", "toxicity": -0.5, "attributes": {"latency": 2000}})
    assert (above.status_code, above.json()["toxicity"]) == (200, 1.5), above.text
    assert (below.status_code, below.json()["toxicity"]) == (200, -0.5), below.text
    assert 0.2 <= round_trip(port) < 1.5  # the 200 ms toxic applied, the 2 s one did not
    text = call("POST", f"{url}/proxies/p/toxics", {"name": "text", "type": "latency", "toxicity": "x"})
    assert text.status_code == 400, text.text
