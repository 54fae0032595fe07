"""A node given as a testcontainers `DockerContainer` definition (`x-testcontainer`): what maps to a stack
file's keys, what is refused (one line naming the file, the line and the key), and how the file's own
keys override the definition's.

testcontainers 4.15 asks the Docker daemon for its API version when a DockerContainer is made (docker-py
finds out the version it speaks), and nothing else until `start()`. These tests answer that one
question from a stand-in daemon on a socket of their own, and assert that it is the only question
asked: no Docker is touched.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import shutil
import socketserver
import sys
import tempfile
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import (ContainerStatusWaitStrategy, ExecWaitStrategy, HttpWaitStrategy,
                                                 LogMessageWaitStrategy, PortWaitStrategy)

from harness.errors import HarnessError
from stack.model import describe, load_stack_file
from stack.testcontainers import service_of
from stack.topology import Readiness, RunParams
from tests.cli_run import run_cli

ROOT = Path(__file__).resolve().parents[2]
PARAMS = RunParams(run_id="u", cookie="c")
IMPORTS = """\
import re
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import (CompositeWaitStrategy, ContainerStatusWaitStrategy,
    ExecWaitStrategy, HealthcheckWaitStrategy, HttpWaitStrategy, LogMessageWaitStrategy, PortWaitStrategy)
"""
STACK = """\
name: tc
services:
  rmq: {x-kind: rabbitmq}
  proxy: {x-kind: proxy}
  api:
    x-testcontainer: "MODULE:api"
EXTRA
x-chaos:
  links: {api: [rmq]}
"""
LINE = 6  # the x-testcontainer line of STACK
MODULES = itertools.count()


class _Daemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture(autouse=True)
def docker_asked(monkeypatch):
    """A stand-in Docker daemon (DOCKER_HOST) that answers GET /version and records every request."""
    folder = tempfile.mkdtemp(prefix="tc-", dir="/tmp")  # a socket path must stay short
    asked: list[str] = []

    class Answer(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            asked.append(f"{self.command} {self.path}")
            known = self.command == "GET" and self.path == "/version"
            body = json.dumps({"ApiVersion": "1.41"} if known else {"message": "not here"}).encode()
            self.send_response(200 if known else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        def log_message(self, *args) -> None:
            pass

        def address_string(self) -> str:
            return "stand-in"

    server = _Daemon(f"{folder}/docker.sock", Answer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{folder}/docker.sock")
    yield asked
    assert set(asked) <= {"GET /version"}, asked  # nothing is created, started or pulled
    server.shutdown()
    server.server_close()
    shutil.rmtree(folder, ignore_errors=True)
    for name in [m for m in sys.modules if m.startswith("tcdefs_")]:
        del sys.modules[name]


def write(tmp_path: Path, definitions: str, extra: str = "") -> Path:
    """A definitions module (a name of its own: Python caches modules by name) beside a stack file
    whose service `api` is `x-testcontainer: MODULE:api`, with `extra` keys beside it."""
    module = f"tcdefs_{next(MODULES)}"
    (tmp_path / f"{module}.py").write_text(IMPORTS + textwrap.dedent(definitions))
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.replace("MODULE", module).replace("EXTRA\n", textwrap.indent(textwrap.dedent(extra), "    ")))
    return path


def module_of(path: Path) -> str:
    return re.search(r'x-testcontainer: "([\w.]+):api"', path.read_text()).group(1)


def failure(path: Path) -> str:
    with pytest.raises(HarnessError) as caught:
        load_stack_file(path, PARAMS)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_a_definition_asks_docker_only_its_api_version(docker_asked):
    container = DockerContainer("my-api:1.0", command="serve --port 8000").with_exposed_ports(8000)
    assert service_of(container, "W") == {"image": "my-api:1.0", "command": "serve --port 8000", "ports": [8000]}
    assert docker_asked == ["GET /version"]


def test_without_a_daemon_a_module_level_definition_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/closed.sock")
    path = write(tmp_path, 'api = DockerContainer("my-api:1.0")\n')
    message = failure(path)
    assert message.startswith(f"{path}:{LINE}: services.api.x-testcontainer: cannot import 'tcdefs_"), message
    assert "DockerException: Error while fetching server API version" in message


def test_a_definition_gives_the_service_its_keys(tmp_path, docker_asked):
    path = write(tmp_path, """\
        def api():
            return (DockerContainer("my-api:1.0", command=["serve", "--port", "8000"])
                    .with_envs(PORT="8000", MODE="test").with_exposed_ports(8000, "9000/tcp")
                    .waiting_for(HttpWaitStrategy(8000, "/healthz").with_startup_timeout(30).with_poll_interval(0.25)))
        """)
    api = load_stack_file(path, PARAMS).node("api")
    assert (api.image, api.command, api.env, api.publish) == (
        "my-api:1.0", ("serve", "--port", "8000"), {"PORT": "8000", "MODE": "test"}, (8000, 9000))
    assert api.ready == Readiness("http", "/healthz", 8000, 30.0, 5.0, 0.25)
    assert (api.role, api.start_after, api.mem_limit, api.build) == ("api", (), None, None)
    assert docker_asked == ["GET /version"]


@pytest.mark.parametrize("strategy, healthcheck", [
    (lambda: LogMessageWaitStrategy("listening on [0-9]+"), {"x-log": "listening on [0-9]+"}),
    (lambda: LogMessageWaitStrategy(re.compile("ready", re.MULTILINE)).with_startup_timeout(12),
     {"x-log": "ready", "x-deadline": 12.0}),
    (lambda: PortWaitStrategy(5432), {"x-tcp": 5432}),
    (lambda: ExecWaitStrategy(["pg_isready", "-U", "app"]), {"test": ["CMD", "pg_isready", "-U", "app"]}),
    (lambda: HttpWaitStrategy(8000).for_status_code(204), {"x-http": "/", "x-port": 8000}),
    (lambda: ContainerStatusWaitStrategy(), None),
    (lambda: None, None),
], ids=["log", "log-timeout", "port", "exec", "http-204", "container-status", "none"])
def test_wait_strategies_that_have_a_healthcheck_form(strategy, healthcheck):
    container = DockerContainer("db:16", _wait_strategy=strategy())
    expected = {"image": "db:16"} | ({"healthcheck": healthcheck} if healthcheck else {})
    assert service_of(container, "W") == expected


REFUSALS = [
    ('DockerContainer("a").with_volume_mapping("/srv/data", "/data")',
     "volumes (with_volume_mapping) /srv/data cannot be honoured: the harness mounts nothing into a node: "
     "put the files in the image"),
    ('DockerContainer("a").with_tmpfs_mount("/scratch")',
     "tmpfs (with_tmpfs_mount) /scratch cannot be honoured: the harness mounts nothing into a node"),
    ('DockerContainer("a").with_copy_into_container(b"x", "/etc/app.conf")',
     "copies (with_copy_into_container) cannot be honoured: nothing is copied into a node: put the files in the image"),
    ('DockerContainer("a").with_network(Network())',
     "a network (with_network) cannot be honoured: a run's nodes share the network the harness makes for the run"),
    ('DockerContainer("a").with_network_aliases("db", "primary")',
     "network aliases (with_network_aliases) db, primary cannot be honoured: a node is reached by its node name"),
    ('DockerContainer("a", name="my-api")',
     "a container name (with_name) cannot be honoured: the harness names a node after its service"),
    ('DockerContainer("a", privileged=True)',
     "Docker options (keyword arguments, with_kwargs) privileged cannot be honoured: "
     "the harness creates a node with its own options only"),
    ('DockerContainer("a").with_bind_ports(8000, 18000)',
     "port 8000 bound to host port 18000 (with_bind_ports) cannot be honoured: the harness publishes each port on "
     "127.0.0.1 at a port of its own (use with_exposed_ports)"),
    ('DockerContainer("a").with_exposed_ports("53/udp")',
     "port 53/udp cannot be honoured: the harness publishes TCP ports only"),
    ('DockerContainer("a").waiting_for(HttpWaitStrategy(8000).using_tls())',
     "HttpWaitStrategy.using_tls cannot be honoured: x-http is a plain GET, ready on any 2xx status"),
    ('DockerContainer("a").waiting_for(HttpWaitStrategy(8000).with_method("POST"))',
     "HttpWaitStrategy.with_method cannot be honoured: x-http is a plain GET, ready on any 2xx status"),
    ('DockerContainer("a").waiting_for(HttpWaitStrategy(8000).with_header("X-Key", "k"))',
     "HttpWaitStrategy.with_header cannot be honoured: x-http is a plain GET, ready on any 2xx status"),
    ('DockerContainer("a").waiting_for(HttpWaitStrategy(8000).for_response_predicate(lambda body: "ok" in body))',
     "HttpWaitStrategy.for_response_predicate cannot be honoured: x-http is a plain GET, ready on any 2xx status"),
    ('DockerContainer("a").waiting_for(HttpWaitStrategy(8000).for_status_code(401))',
     "HttpWaitStrategy.for_status_code(200, 401) cannot be honoured: x-http is a plain GET, ready on any 2xx status"),
    ('DockerContainer("a").waiting_for(LogMessageWaitStrategy("ready", times=2))',
     "LogMessageWaitStrategy.times cannot be honoured: x-log waits for one line of either stream to match"),
    ('DockerContainer("a").waiting_for(LogMessageWaitStrategy(re.compile("ready", re.IGNORECASE)))',
     "LogMessageWaitStrategy pattern re.compile('ready', re.IGNORECASE) cannot be honoured: "
     "x-log takes the pattern's text alone (put flags in it: (?i)...)"),
    ('DockerContainer("a").waiting_for(ExecWaitStrategy(["check"], expected_exit_code=3))',
     "ExecWaitStrategy.expected_exit_code cannot be honoured: a healthcheck test passes on exit 0"),
    ('DockerContainer("a").waiting_for(CompositeWaitStrategy(PortWaitStrategy(1), PortWaitStrategy(2)))',
     "wait strategy CompositeWaitStrategy has no healthcheck form (x-http, x-tcp, x-log, test): "
     "write the service's healthcheck in the stack file"),
    ('DockerContainer("a").waiting_for(HealthcheckWaitStrategy())',
     "wait strategy HealthcheckWaitStrategy has no healthcheck form (x-http, x-tcp, x-log, test): "
     "write the service's healthcheck in the stack file"),
    ('type("Db", (DockerContainer,), {"start": lambda self: self})("a")',
     "Db does work of its own when it starts (start), which the harness would not do: give a DockerContainer"),
]


@pytest.mark.parametrize("definition, message", REFUSALS, ids=[m.split(" cannot")[0] for _, m in REFUSALS])
def test_what_the_harness_cannot_honour_is_refused_in_one_line(tmp_path, definition, message):
    path = write(tmp_path, f"api = {definition}\n")
    assert failure(path) == f"{path}:{LINE}: services.api.x-testcontainer: {message}"


def test_the_files_keys_override_the_definitions_and_environment_merges(tmp_path):
    path = write(tmp_path, """\
        api = (DockerContainer("my-api:1.0", command="serve").with_envs(MODE="definition", PORT="8000")
               .with_bind_ports(8000, 18000)
               .waiting_for(CompositeWaitStrategy(PortWaitStrategy(8000), LogMessageWaitStrategy("up"))))
        """, extra="""\
        command: [serve, --verbose]
        ports: [8000]
        healthcheck: {x-tcp: 8000}
        environment: {MODE: file, AMQP: "{{ via api rmq }}"}
        depends_on: [rmq]
        deploy: {replicas: 2}
        x-role: web
        mem_limit: 128m
        """)
    topology = load_stack_file(path, PARAMS)
    api1, api2 = topology.nodes[2:]
    assert (api1.name, api2.name) == ("api1", "api2")
    assert api1 == replace(api2, name="api1")
    assert (api1.image, api1.command, api1.publish, api1.role, api1.mem_limit, api1.start_after) == (
        "my-api:1.0", ("serve", "--verbose"), (8000,), "web", "128m", ("rmq",))
    assert api1.env == {"MODE": "file", "PORT": "8000", "AMQP": "proxy:20001"}
    assert api1.ready == Readiness("tcp", "", 8000, interval_s=0.1)


def test_a_files_environment_in_list_form_merges_too(tmp_path):
    path = write(tmp_path, 'api = DockerContainer("my-api:1.0").with_envs(A="definition", B="definition")\n',
                 extra='environment: ["B=file", "C={{ node }}"]\n')
    assert load_stack_file(path, PARAMS).node("api").env == {"A": "definition", "B": "file", "C": "api"}


@pytest.mark.parametrize("definitions, extra, key, message", [
    ('web = DockerContainer("a")\n', "", "x-testcontainer", "'tcdefs_*' has no attribute 'api'"),
    ('api = "my-api:1.0"\n', "", "x-testcontainer",
     "tcdefs_*:api is a str, not a testcontainers DockerContainer or a function returning one"),
    ("def api():\n    return None\n", "", "x-testcontainer",
     "tcdefs_*:api is a NoneType, not a testcontainers DockerContainer or a function returning one"),
    ('def api():\n    raise KeyError("API_IMAGE")\n', "", "x-testcontainer",
     "tcdefs_*:api() failed: KeyError: 'API_IMAGE'"),
    ('api = DockerContainer("a")\n', "build: .\n", "x-testcontainer",
     "a definition names its image: give build or x-testcontainer, not both"),
    ('api = DockerContainer("")\n', "", "image", "a service needs an image, or a build"),
    ('api = DockerContainer("a").with_exposed_ports("http")\n', "", "ports.0",
     "a container port 1..65535 (published on 127.0.0.1), not 'http'"),
    ('api = DockerContainer("a").waiting_for(LogMessageWaitStrategy("up").with_startup_timeout(7200))\n', "",
     "healthcheck.x-deadline", "a duration such as 60s or 1m30s, not 7200.0"),
])
def test_a_bad_definition_is_one_line_at_its_x_testcontainer_line(tmp_path, definitions, extra, key, message):
    path = write(tmp_path, definitions, extra)
    assert failure(path) == f"{path}:{LINE}: services.api.{key}: {message.replace('tcdefs_*', module_of(path))}"


def test_a_module_that_cannot_be_imported_and_a_bad_target(tmp_path):
    path = write(tmp_path, "")
    path.write_text(path.read_text().replace('"tcdefs_', '"absent.tcdefs_'))
    module = module_of(path)
    assert failure(path) == (f"{path}:{LINE}: services.api.x-testcontainer: cannot import {module!r}: "
                             "No module named 'absent'")
    path.write_text(path.read_text().replace(":api", ""))
    assert failure(path) == f"{path}:{LINE}: services.api.x-testcontainer: module:attribute, not {module!r}"


def test_x_testcontainer_is_for_own_services_only(tmp_path):
    path = write(tmp_path, 'api = DockerContainer("a")\n')
    path.write_text(path.read_text().replace("{x-kind: rabbitmq}", '{x-kind: rabbitmq, x-testcontainer: "m:a"}'))
    assert failure(path) == (f"{path}:3: services.rmq.x-testcontainer: not a key of a rabbitmq service "
                             "(known: x-kind, image, deploy, x-clock)")


def test_the_module_is_looked_up_beside_the_file_and_sys_path_is_left_as_it_was(tmp_path):
    path = write(tmp_path, 'api = DockerContainer("a")\n')
    before = list(sys.path)
    assert load_stack_file(path, PARAMS).node("api").image == "a"
    assert sys.path == before


def test_stack_check_shows_the_definitions_nodes(tmp_path, docker_asked):
    path = write(tmp_path, """\
        api = DockerContainer("my-api:1.0").with_exposed_ports(8000).waiting_for(PortWaitStrategy(8000))
        """, extra="deploy: {replicas: 2}\ndepends_on: [rmq]\n")
    result = run_cli("stack", "check", str(path))  # DOCKER_HOST: the stand-in daemon
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[3:5] == ["  node api1: role api, image my-api:1.0; after rmq; publishes 8000",
                                               "  node api2: role api, image my-api:1.0; after rmq; publishes 8000"]
    assert docker_asked == ["GET /version"]


def test_the_mailer_relay_as_a_definition_gives_the_same_nodes(tmp_path):
    """examples/email's relay, written as the team's testcontainers definition, resolves to exactly the
    nodes and links of the hand-written service."""
    mailer = ROOT / "examples" / "email" / "stack.yaml"
    relay = """\
  relay:
    image: provider
    command: [python3, -m, stack.provider.sink]
    environment: {SMTP_PORT: "2525", HTTP_PORT: "8080", SINK_LOG: /var/lib/chaos-sink/deliveries.jsonl}
    ports: [2525, 8080]
    mem_limit: 256m
    healthcheck: {x-http: /health, x-port: 8080}
"""
    text = mailer.read_text()
    assert relay in text
    module = f"tcdefs_{next(MODULES)}"
    (tmp_path / f"{module}.py").write_text(IMPORTS + textwrap.dedent("""\
        def relay():
            return (DockerContainer("provider", command=["python3", "-m", "stack.provider.sink"])
                    .with_envs(SMTP_PORT="2525", HTTP_PORT="8080", SINK_LOG="/var/lib/chaos-sink/deliveries.jsonl")
                    .with_exposed_ports(2525, 8080)
                    .waiting_for(HttpWaitStrategy(8080, "/health")))
        """))
    mine = tmp_path / "stack.yaml"
    mine.write_text(text.replace(relay, f'  relay:\n    x-testcontainer: "{module}:relay"\n    mem_limit: 256m\n')
                    .replace("context: mailer", f"context: {mailer.parent / 'mailer'}"))
    given, written = load_stack_file(mine, PARAMS), load_stack_file(mailer, PARAMS)
    assert given.nodes == written.nodes and given.links == written.links
    assert "  node relay: role relay, image provider; publishes 2525,8080" in describe(given)


def test_testcontainers_own_modules(tmp_path):
    """RedisContainer is a plain definition whose own wait strategy has no healthcheck form until the
    file writes one; PostgresContainer configures itself in start(), which the harness would not do."""
    path = write(tmp_path, 'from testcontainers.community.redis import RedisContainer\n'
                           'api = RedisContainer("redis:7")\n')
    assert failure(path) == (f"{path}:{LINE}: services.api.x-testcontainer: wait strategy PingWaitStrategy has no "
                             "healthcheck form (x-http, x-tcp, x-log, test): write the service's healthcheck in the "
                             "stack file")
    path = write(tmp_path, 'from testcontainers.community.redis import RedisContainer\n'
                           'api = RedisContainer("redis:7", password="pw")\n',
                 extra='healthcheck: {test: [CMD, redis-cli, -a, pw, ping]}\n')
    api = load_stack_file(path, PARAMS).node("api")
    assert (api.image, api.command, api.publish) == ("redis:7", ("redis-server", "--requirepass", "pw"), (6379,))
    assert api.ready == Readiness("exec", ("redis-cli", "-a", "pw", "ping"))
    path = write(tmp_path, 'from testcontainers.community.postgres import PostgresContainer\n'
                           'api = PostgresContainer("postgres:16")\n')
    assert failure(path) == (f"{path}:{LINE}: services.api.x-testcontainer: PostgresContainer does work of its own "
                             "when it starts (start, _configure), which the harness would not do: give a "
                             "DockerContainer")
