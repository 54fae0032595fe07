"""Stack files: the shipped ones give exactly today's topologies, and a bad file gets one line naming
the file, the line and the key, before anything starts."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from harness.errors import HarnessError
from stack.model import describe, load_stack_file, parse_stack, shipped_stack
from stack.topology import RunParams, build_topology
from tests.topology_oracle import legacy_topology
from tests.cli_run import run_cli, single_error_line


@pytest.mark.parametrize("name", ["default", "small"])
@pytest.mark.parametrize("with_services", [True, False])
@pytest.mark.parametrize("direct", ["", "1"])
def test_shipped_files_give_the_topologies(name, with_services, direct, monkeypatch):
    monkeypatch.setenv("CHAOS_SERVICES_DIRECT", direct)
    params = RunParams(run_id="unit", cookie="cookie", with_services=with_services)
    from_file = load_stack_file(shipped_stack(name), params)
    expected = legacy_topology(name, params)
    assert from_file.links == expected.links
    for got, want in zip(from_file.nodes, expected.nodes, strict=True):
        assert got == replace(want, clock=got.clock)
    # the nodes that opt in to clock-skew (x-clock: true): Redis in both, the API and workers in default
    clock = {"redis1", "redis2"} | ({"api", "worker1", "worker2"} if with_services and name == "default" else set())
    assert {n.name for n in from_file.nodes if n.clock} == clock


MINIMAL = """\
name: tiny
services:
  cache: {x-kind: redis, deploy: {replicas: 2}}
  proxy: {x-kind: proxy}
  app:
    image: my-app:1.2
    command: "serve --port 9000"
    environment: ["REDIS={{ via app cache }}", "ME={{ node }}", "RAW={{ direct cache }}"]
    ports: ["9000"]
    deploy: {replicas: 2}
    depends_on: {cache: {condition: service_started}}
x-chaos:
  links: {app: [cache]}
"""


def parse(text: str, **params):
    return parse_stack(textwrap.dedent(text), "stack.yaml", RunParams(run_id="u", cookie="c", **params))


def test_a_compose_shaped_file_of_ones_own():
    topo = parse(MINIMAL)
    assert [n.name for n in topo.nodes] == ["cache1", "cache2", "proxy", "app1", "app2"]
    app2 = topo.node("app2")
    assert app2.command == ("serve", "--port", "9000") and app2.publish == (9000,) and app2.role == "app"
    assert app2.env == {"REDIS": "proxy:20001,proxy:20002", "ME": "app2", "RAW": "cache1:6379,cache2:6379"}
    assert app2.start_after == ("cache1", "cache2")
    assert [l.name for l in topo.links] == ["app-cache1", "app-cache2"]
    assert any("link app-cache2: app -> cache2:6379 via proxy:20002" in line for line in describe(topo))


@pytest.mark.parametrize("edit, message", [
    (("x-kind: proxy", "x-kind: kafka"), "stack.yaml:4: services.proxy.x-kind: unknown kind 'kafka'"),
    (("name: tiny", "name: tiny\nvolumes: {}"), "stack.yaml:2: volumes: unknown key"),
    (("{{ via app cache }}", "{{ via app db }}"), "stack.yaml:8: services.app.environment.REDIS: unknown service 'db'"),
    (("{{ via app cache }}", "{{ via web cache }}"), "no client group 'web' in x-chaos.links"),
    (("{{ node }}", "{{ whoami }}"), "unknown template '{{ whoami }}'"),
    (("{cache: {condition: service_started}}", "[db]"), "stack.yaml:11: services.app.depends_on.0: unknown service 'db'"),
    (("replicas: 2}\n    depends_on", "replicas: 0}\n    depends_on"), "services.app.deploy.replicas: must be a whole number"),
    (('ports: ["9000"]', 'ports: ["90000"]'), "services.app.ports.0: a container port 1..65535"),
    (("    image: my-app:1.2\n", ""), "services.app.image: a service needs an image"),
    (("links: {app: [cache]}", "links: {app: [app]}"), "group 'app' has no link to service 'cache'"),
    (("  proxy: {x-kind: proxy}\n", "  proxy: {x-kind: proxy}\n  cache1: {image: x}\n"),
     "stack.yaml:5: services.cache1: node 'cache1' is also a node of service 'cache'"),
    (("  proxy: {x-kind: proxy}\n", "  proxy: {x-kind: proxy}\n  proxy: {x-kind: proxy}\n"), "services.proxy: given twice"),
    (("image: my-app:1.2", "image: [my-app"), "stack.yaml:7: not valid YAML"),
    (("replicas: 2}}", "replicas: 2}, x-clock: yes please}"), "services.cache.x-clock: true or false, not 'yes please'"),
    (("replicas: 2}}", "replicas: 2}, image: [redis]}"), "stack.yaml:3: services.cache.image: an image name, not ['redis']"),
    (("replicas: 2}}", "replicas: 2}, command: [x]}"), "services.cache.command: not a key of a redis service"),
])
def test_bad_files_get_one_line_naming_the_key(edit, message):
    old, new = edit
    assert old in MINIMAL
    with pytest.raises(HarnessError) as caught:
        parse(MINIMAL.replace(old, new, 1))
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_x_clock_opts_a_service_of_any_kind_in_to_clock_faults():
    topo = parse(MINIMAL.replace("replicas: 2}}", "replicas: 2}, x-clock: true}", 1)
                 .replace("    image: my-app:1.2\n", "    image: my-app:1.2\n    x-clock: false\n", 1))
    assert {n.name for n in topo.nodes if n.clock} == {"cache1", "cache2"}


def test_an_infrastructure_service_may_name_its_image():
    """An official image, say: every node of that service runs it; the kind's config files are owned by
    the product's own user, so an entrypoint that drops to it can write them."""
    topo = parse(MINIMAL.replace("replicas: 2}}", "replicas: 2}, image: redis:7-bookworm}", 1))
    assert [(n.name, n.image) for n in topo.nodes if n.role == "redis"] == [("cache1", "redis:7-bookworm"),
                                                                            ("cache2", "redis:7-bookworm")]
    assert topo.node("proxy").image == "proxy"  # the others keep the harness's own
    assert {f.owner for f in topo.node("cache1").files} == {"redis"}


def test_a_start_order_cycle_is_refused():
    text = MINIMAL.replace("depends_on: {cache: {condition: service_started}}", "depends_on: [other]")
    text = text.replace("x-chaos:", "  other:\n    image: x\n    depends_on: [app]\nx-chaos:")
    with pytest.raises(HarnessError, match="start order of app1, app2, other: a cycle"):
        parse(text)


def test_stack_check_cli(tmp_path):
    good = run_cli("stack", "check", str(shipped_stack("default")))
    assert good.returncode == 0 and "stack default: 18 nodes, 31 proxy links" in good.stdout, good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("x-kind: proxy", "x-kind: kafka"))
    line = single_error_line(run_cli("stack", "check", str(bad)))
    assert f"{bad}:4: services.proxy.x-kind: unknown kind 'kafka'" in line
    assert run_cli("stack", "check", str(tmp_path / "none.yaml")).returncode == 3
    named = run_cli("stack", "check", "small")  # a shipped stack by name, as --topology takes it
    assert named.returncode == 0 and "stack small: 11 nodes" in named.stdout, named.stderr


def test_topologies_are_named_or_given_as_files(tmp_path):
    from stack.topology import stack_file_of

    params = RunParams(run_id="u", cookie="c")
    own = tmp_path / "mine.yaml"
    own.write_text(MINIMAL)
    assert build_topology(str(own), params).name == "tiny"
    assert stack_file_of("small") == str(shipped_stack("small"))
    with pytest.raises(HarnessError, match="unknown topology 'huge': choose one of default, small, or give a stack"):
        build_topology("huge", params)
    with pytest.raises(HarnessError, match="no stack file .*none.yaml"):
        build_topology(str(tmp_path / "none.yaml"), params)


def test_a_stack_remembers_its_file_for_attach(tmp_path):
    from stack import cleanup
    from stack.stack import Stack

    own = tmp_path / "mine.yaml"
    own.write_text(MINIMAL)
    stack = Stack(str(own), run_id="r1")  # plain data: no Docker until up()
    labels = stack.labels()
    assert labels[cleanup.LABEL_STACK_FILE] == str(own.resolve()) and labels[cleanup.LABEL_TOPOLOGY] == "tiny"
    again = Stack.attach(None, "r1", labels)
    assert again.topology == stack.topology


def test_the_plugin_refuses_a_bad_stack_file_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # this checkout's plugin, whatever is installed
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("x-kind: proxy", "x-kind: kafka"))
    (tmp_path / "test_x.py").write_text("import pytest\n\n@pytest.mark.chaos\ndef test_x(chaos_stack):\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                             str(tmp_path), "--chaos-stack", str(bad), str(tmp_path / "test_x.py")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": root})
    assert result.returncode != 0
    assert f"bad stack: {bad}:4: services.proxy.x-kind: unknown kind 'kafka'" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("check, expected", [
    ("{x-http: /health}", ("http", "/health", 9000, None, 5.0, 0.1)),
    ("{x-http: /up, x-port: 9100, x-deadline: 1m30s, timeout: 2s, interval: 250ms}", ("http", "/up", 9100, 90.0, 2.0, 0.25)),
    ("{x-tcp: 9000, retries: 3, start_period: 10s}", ("tcp", "", 9000, None, 5.0, 0.1)),
    ('{test: ["CMD", "pg_isready", "-q"]}', ("exec", ("pg_isready", "-q"), None, None, 5.0, 0.5)),
    ('{test: ["CMD-SHELL", "curl -f localhost || exit 1"]}', ("exec", ("sh", "-c", "curl -f localhost || exit 1"), None, None, 5.0, 0.5)),
    ("{test: 'test -e /ready', x-deadline: 20}", ("exec", ("sh", "-c", "test -e /ready"), None, 20.0, 5.0, 0.5)),
    ("{x-log: 'listening on \\d+'}", ("log", r"listening on \d+", None, None, 5.0, 0.5)),
])
def test_healthchecks_in_composes_words(check, expected):
    topo = parse(MINIMAL.replace('ports: ["9000"]', f'ports: ["9000"]\n    healthcheck: {check}'))
    r = topo.node("app1").ready
    assert (r.how, r.target, r.port, r.deadline_s, r.probe_timeout_s, r.interval_s) == expected
    assert parse(MINIMAL).node("app1").ready is None


@pytest.mark.parametrize("check, message", [
    ("{x-http: /a, x-tcp: 9000}", "services.app.healthcheck: give exactly one of test, x-http, x-tcp, x-log"),
    ("{x-http: health}", "services.app.healthcheck.x-http: a path starting with '/'"),
    ("{x-tcp: 0}", "services.app.healthcheck.x-tcp: a container port 1..65535"),
    ("{x-http: /, x-deadline: soon}", "services.app.healthcheck.x-deadline: a duration such as 60s"),
    ("{test: [pg_isready]}", "services.app.healthcheck.test: a command"),
    ("{x-log: '('}", "services.app.healthcheck.x-log: a regular expression"),
    ("{x-http: /, disable: true}", "services.app.healthcheck.disable: not read"),
])
def test_a_bad_healthcheck_is_one_line(check, message):
    with pytest.raises(HarnessError) as caught:
        parse(MINIMAL.replace('ports: ["9000"]', f'ports: ["9000"]\n    healthcheck: {check}'))
    assert message in str(caught.value) and "stack.yaml:10:" in str(caught.value), str(caught.value)
