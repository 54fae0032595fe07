"""A stack file of one's own on the real runtime: an image the harness does not build must already be
here (nothing can be pulled), and a missing one is refused before any container or network exists."""

from __future__ import annotations

import secrets
import time

import pytest

from harness.errors import HarnessError
from stack.stack import Stack
from tests.integration.test_kill_and_clean import namespace_resources

pytestmark = pytest.mark.chaos

OWN = """\
name: mine
services:
  cache: {x-kind: redis}
  proxy: {x-kind: proxy}
  app:
    image: chaos-test/absent:1
    ports: [9000]
x-chaos:
  links: {app: [cache]}
"""


def test_an_absent_image_is_refused_before_anything_starts(tmp_path, monkeypatch):
    ns = "test-own-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    path = tmp_path / "mine.yaml"
    path.write_text(OWN)
    with pytest.raises(HarnessError, match=r"app: image 'chaos-test/absent:1' is not present locally"):
        Stack(str(path)).up()
    assert namespace_resources(ns) == ([], [])


READY = """\
name: ready
services:
  web:
    image: base
    command: [python3, -m, http.server, "9000"]
    ports: [9000]
    healthcheck: {x-http: /, x-deadline: 30s}
  port:
    image: base
    command: [python3, -m, http.server, "9001"]
    healthcheck: {x-tcp: 9001, x-deadline: 30s}
  logger:
    image: base
    command: [sh, -c, "sleep 1; echo service up and ready; exec sleep 600"]
    healthcheck: {x-log: "up and ready$", x-deadline: 30s}
  tested:
    image: base
    command: [sh, -c, "sleep 1; touch /tmp/ok; exec sleep 600"]
    healthcheck: {test: ["CMD", "test", "-e", "/tmp/ok"], interval: 200ms, x-deadline: 30s}
"""


def test_own_services_are_ready_as_their_healthcheck_says(tmp_path, monkeypatch):
    """Each readiness kind waits on its real condition (HTTP, TCP, a log line, a command), and a service
    whose condition never comes fails within its own deadline, naming the check and the node."""
    ns = "test-ready-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    path = tmp_path / "ready.yaml"
    path.write_text(READY)
    lines: list[str] = []
    with Stack(str(path), progress=lines.append) as stack:
        for node in ("web", "port", "logger", "tested"):
            assert stack.container(node).status == "running"
        said = "\n".join(lines)
        for what in ("web answers GET /", "port accepts on port 9001", "logger logged its ready line",
                     "tested passes its healthcheck test"):
            assert f"ready: {what}" in said, said
    assert namespace_resources(ns) == ([], [])
    never = tmp_path / "never.yaml"
    never.write_text(READY.replace('x-log: "up and ready$", x-deadline: 30s', 'x-log: "never said", x-deadline: 4s'))
    started = time.monotonic()
    with pytest.raises(HarnessError, match=r"logger: not ready after [45]s: logger logged its ready line "
                                           r"\(last: no log line matches 'never said'\)"):
        Stack(str(never)).up()
    assert time.monotonic() - started < 60
    assert namespace_resources(ns) == ([], [])


BUILT = """\
name: built
services:
  greeter:
    build: {context: greeter, args: {GREETING: hello-from-build}}
    image: chaos-test/greeter:dev
    command: [python3, /srv/serve.py]
    ports: [9000]
    healthcheck: {x-http: /, x-deadline: 30s}
"""


def test_a_service_is_built_from_its_stack_files_build(tmp_path, monkeypatch):
    """Compose's `build:`: the context beside the stack file, FROM the harness's base through the BASE
    arg (no registry), the file's own args, `image:` as an extra tag; the second run finds it cached."""
    import docker

    ns = "test-build-" + secrets.token_hex(3)
    monkeypatch.setenv("CHAOS_NAMESPACE", ns)
    context = tmp_path / "greeter"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nARG GREETING\n"
                                        "RUN echo \"$GREETING\" > /srv/greeting\nCOPY serve.py /srv/serve.py\n")
    (context / "serve.py").write_text("import http.server, os\nos.chdir('/srv')\n"
                                      "http.server.test(http.server.SimpleHTTPRequestHandler, port=9000)\n")
    token = secrets.token_hex(4)  # a fresh build input, so this run builds for real
    (context / "token.txt").write_text(token)
    path = tmp_path / "built.yaml"
    path.write_text(BUILT)
    client = docker.from_env()
    lines: list[str] = []
    image = None
    try:
        with Stack(str(path), progress=lines.append) as stack:
            image = stack.topology.node("greeter").image
            assert any(f"built {image}" in line for line in lines), lines
            code, out = stack.exec("greeter", ["cat", "/srv/greeting"])
            assert (code, out.strip()) == (0, "hello-from-build")
            assert client.images.get("chaos-test/greeter:dev").id == client.images.get(image).id
        lines.clear()
        with Stack(str(path), progress=lines.append):
            assert any(f"{image} is built (cached)" in line for line in lines), lines
        assert namespace_resources(ns) == ([], [])
    finally:
        for tag in ("chaos-test/greeter:dev", image):
            if tag:
                try:
                    client.images.remove(tag, force=True)
                except docker.errors.APIError:
                    pass
