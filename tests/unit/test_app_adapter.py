"""The app under test is described by its stack file (`x-chaos.client`, `provider`, `parked`, `setup`,
`reset`): the workload speaks the declared request shape and status sets, a bad block is one line
naming the file, the line and the key, and the engine's modules know nothing of the reference app."""

from __future__ import annotations

import ast
import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.history import HistoryWriter, load_history
from harness.workload import Workload
from stack.model import describe, load_stack_file, parse_stack, shipped_stack
from stack.topology import RunParams

ROOT = Path(__file__).resolve().parents[2]

OWN = """\
name: notify
services:
  queue: {x-kind: rabbitmq, deploy: {replicas: 1}}
  cache: {x-kind: redis, deploy: {replicas: 1}}
  gateway:
    image: notify-gateway:3
    ports: [9000, 9100]
  mailer: {image: notify-mailer:3, deploy: {replicas: 2}}
  provider: {image: recorder:1, ports: [8080]}
x-chaos:
  client:
    node: gateway
    port: 9000
    send: {method: PUT, path: /v1/notify, body: {message: {ref: "{id}", to: ["{to}"]}, note: "n-{text}"}}
    accepted: [201]
    refused: ["429", "400-404"]
  provider: {node: provider, port: 8080}
  parked: {amqp_queue: notify.parked}
  setup:
    - python: notify_setup:declare
  reset:
    stop: [mailer]
    steps:
      - amqp_purge: [notify.work, notify.parked]
      - redis_flush: true
      - exec: {node: gateway, command: [notify, reset], timeout: 20}
      - http: {node: provider, port: 8080, path: /reset}
"""


def parse(text: str, **params):
    return parse_stack(textwrap.dedent(text), "stack.yaml", RunParams(run_id="u", cookie="c", **params))


def test_an_app_of_ones_own_is_read_from_the_file():
    app = parse(OWN).app
    assert (app.client.node, app.client.port, app.client.send.method, app.client.send.path) == \
        ("gateway", 9000, "PUT", "/v1/notify")
    assert app.client.campaign is None
    assert [app.client.outcome(s) for s in (201, 200, 429, 404, 405, 503, 500)] == \
        ["ok", "info", "fail", "fail", "info", "info", "info"]
    assert (app.provider.node, app.provider.port, app.parked_queue) == ("provider", 8080, "notify.parked")
    assert app.reset_stop == ("mailer1", "mailer2")
    assert [s.kind for s in app.setup] == ["python"] and app.setup[0].args == "notify_setup:declare"
    assert [s.kind for s in app.reset] == ["amqp_purge", "redis_flush", "exec", "http"]
    assert app.reset[2].args == {"node": "gateway", "command": ("notify", "reset"), "timeout": 20.0}
    assert app.reset[3].args == {"node": "provider", "port": 8080, "method": "POST", "path": "/reset"}
    assert app.reset[0].where == "stack.yaml:24"
    assert any("client: PUT gateway:9000/v1/notify; accepted 201, refused 429,400-404" in line
               for line in describe(parse(OWN)))


def test_infrastructure_alone_has_no_app_to_drive():
    assert parse(OWN, with_services=False).app is None


@pytest.mark.parametrize("name", ["default", "small"])
def test_the_shipped_files_declare_the_reference_app(name):
    app = load_stack_file(shipped_stack(name), RunParams(run_id="u", cookie="c")).app
    assert (app.client.node, app.client.port, app.client.send.path, app.client.campaign.path) == \
        ("api", 8080, "/messages", "/campaigns")
    assert app.client.campaign_id("c1", "+336") == "c1:+336"
    assert (app.provider.node, app.parked_queue) == ("sink", "dispatch.dead")
    workers = ["worker1", "worker2"] if name == "default" else ["worker1"]
    assert app.reset_stop == ("scheduler", "scheduler2", *workers)


@pytest.mark.parametrize("edit, message", [
    (('"{id}"', '"{ident}"'), "stack.yaml:14: x-chaos.client.send.body.message.ref: unknown placeholder {ident}"),
    (('ref: "{id}", ', ""), "x-chaos.client.send.body: the body must carry {id}"),
    (("port: 9000\n", "port: 9001\n"), "stack.yaml:13: x-chaos.client.port: must be a port service 'gateway' publishes"),
    (("node: gateway\n    port", "node: mailer\n    port"), "x-chaos.client.node: service 'mailer' has 2 nodes"),
    (('refused: ["429"', 'refused: ["201"'), "x-chaos.client.refused: status 201 is both accepted and refused"),
    (('"400-404"', '"404-400"'), "x-chaos.client.refused.1: a status (503) or a range"),
    (("  provider: {node: provider, port: 8080}\n", ""), "stack.yaml:10: x-chaos: an app block needs x-chaos.provider"),
    (("stop: [mailer]", "stop: [sender]"), "stack.yaml:22: x-chaos.reset.stop.0: unknown service or node 'sender'"),
    (("redis_flush: true", "redis_flush: yes please"), "x-chaos.reset.steps.1.redis_flush: true"),
    (("- redis_flush: true", "- flush_all: true"), "x-chaos.reset.steps.1.flush_all: unknown step"),
    (("timeout: 20", "timeout: 0"), "x-chaos.reset.steps.2.exec.timeout: seconds within 1..600"),
    (("notify_setup:declare", "notify_setup"), "x-chaos.setup.0.python: module:function"),
    (("  queue: {x-kind: rabbitmq, deploy: {replicas: 1}}\n", ""), "x-chaos.parked: needs a rabbitmq service"),
    (("  parked:", "  parkd:"), "stack.yaml:18: x-chaos.parkd: unknown key"),
])
def test_a_bad_app_block_gets_one_line_naming_the_key(edit, message):
    old, new = edit
    assert old in OWN
    with pytest.raises(HarnessError) as caught:
        parse(OWN.replace(old, new, 1))
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


class Gateway:
    """An HTTP endpoint that answers each request with the next status of `statuses`."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.seen = list(statuses), []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.seen.append((self.command, self.path, body))
                self.send_response(gateway.statuses.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_the_workload_speaks_the_declared_shape_and_status_sets(tmp_path):
    client = parse(OWN).app.client
    gateway = Gateway([201, 429, 202, 500])
    try:
        with HistoryWriter(tmp_path / "h.jsonl") as writer:
            workload = Workload(gateway.url, writer, client=client, clients=1, rate=200, count=4, run_id="r")
            outcomes = workload.run()
            acknowledged = workload.acknowledged_ids()
    finally:
        gateway.server.shutdown()
    assert [(m, p) for m, p, _ in gateway.seen] == [("PUT", "/v1/notify")] * 4
    first = gateway.seen[0][2]
    assert first["message"]["ref"] == "r-00000000" and first["note"] == "n-hello 0"
    assert isinstance(first["message"]["to"], list) and len(first["message"]["to"]) == 1
    assert outcomes == {"ok": 1, "fail": 1, "info": 2}
    assert acknowledged == {"r-00000000"}
    ops = [op for op in load_history(tmp_path / "h.jsonl") if op.type != "invoke"]
    assert [op.type for op in ops] == ["ok", "fail", "info", "info"]


def test_a_python_step_finds_its_module_beside_the_stack_file(tmp_path):
    from stack.appsteps import load_callable

    (tmp_path / "notify_setup.py").write_text("def declare(ctx):\n    return ctx\n")
    assert load_callable("notify_setup:declare", str(tmp_path))("x") == "x"
    with pytest.raises(HarnessError, match="'notify_setup' has no function 'nope'"):
        load_callable("notify_setup:nope", str(tmp_path))
    with pytest.raises(HarnessError, match="cannot import 'absent_module'"):
        load_callable("absent_module:f", str(tmp_path))


def test_what_a_python_step_raises_is_one_line_with_its_traceback_as_detail(tmp_path):
    """A reset step that cannot reach ZooKeeper, say: the step and the error in one line, no traceback."""
    from stack.appsteps import Step, run_steps

    (tmp_path / "app_reset.py").write_text("def clear(ctx):\n    raise TimeoutError('ZooKeeper did not answer')\n")
    step = Step(kind="python", args="app_reset:clear", where="stack.yaml:9")
    with pytest.raises(HarnessError) as caught:
        run_steps(object(), (step,), str(tmp_path))
    assert str(caught.value) == ("stack.yaml:9: python step failed: app_reset:clear raised TimeoutError: "
                                 "ZooKeeper did not answer")
    assert "Traceback" in caught.value.detail and "app_reset.py" in caught.value.detail


ENGINE = [p for d in ("harness", "faults", "stack", "reports") for p in sorted((ROOT / d).rglob("*.py"))
          if "stacks" not in p.relative_to(ROOT).parts]  # stack/stacks: the shipped stack files and their app


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_imports_nothing_of_the_reference_app(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] == "dispatch"}
    # nor names it in a string it would act on (a switch, the sink's port, the dead-letter queue)
    text = path.read_text()
    # nor its incident switches and misconfiguration: the packaged incidents take them as inputs
    for word in ("worker-crash-on-start", "dispatch.dead", "/dispatch/", "redis-sticky-master", "broker-no-recovery",
                 "zk-unfenced-fanout", "api-fire-and-forget", "worker-reject-drop", "DISPATCH_ROUTING_KEY"):
        assert word not in text, word


def test_targets_are_the_stack_files_roles_nodes_and_groups():
    from harness.schedule import Schedule

    text = OWN.replace("  provider: {image", "  proxy: {x-kind: proxy}\n  provider: {image", 1)
    text = text.replace("x-chaos:\n", "x-chaos:\n  links: {senders: [queue, cache]}\n", 1)
    topology = parse(text)
    for target in ("mailer", "mailers", "mailer2", "gateway", "rmq", "queue1", "redis-primary"):
        Schedule.from_data([{"at": 0, "fault": "kill", "targets": [target]}], topology)
    for target in ("senders", "senders:cache1", "senders-queue1", "senders-*", "queue1"):
        Schedule.from_data([{"at": 0, "fault": "link-down", "targets": [target]}], topology)
    for fault, target in (("kill", "api"), ("kill", "worker1"), ("link-down", "workers")):
        with pytest.raises(HarnessError, match=f"unknown target '{target}'"):
            Schedule.from_data([{"at": 0, "fault": fault, "targets": [target]}], topology)
    # with no topology given, the shipped default stack's names hold
    Schedule.from_data([{"at": 0, "fault": "kill", "targets": ["workers"]}, {"at": 0, "fault": "kill", "targets": ["sink"]}])


def test_generated_targets_come_from_the_stack_file():
    from harness.generate import link_targets, node_targets

    default = load_stack_file(shipped_stack("default"), RunParams(run_id="u", cookie="c"))
    nodes = node_targets(default)
    assert "sink" not in nodes and "proxy" not in nodes and "api" in nodes
    assert "rabbitmq-queue-leader:dispatch.messages" in nodes
    assert link_targets(default)[-3:] == ["api", "workers", "scheduler"]
    own = parse(OWN.replace("  parked:", "  queues: [notify.work]\n  parked:"))
    assert own.app.queues == ("notify.work",)
    assert node_targets(own) == ["queue1", "cache1", "gateway", "mailer1", "mailer2", "redis-primary",
                                 "redis-replica", "rabbitmq-queue-leader:notify.work"]


def test_search_deploys_overrides_on_the_stack_files_nodes_and_roles():
    from harness.cli import deploy_overrides

    topology = load_stack_file(shipped_stack("default"), RunParams(run_id="u", cookie="c"))
    assert deploy_overrides(["workers:CHAOS_SWITCHES=worker-reject-drop", "api:LOG=debug"], topology) == {
        "worker1": {"CHAOS_SWITCHES": "worker-reject-drop"}, "worker2": {"CHAOS_SWITCHES": "worker-reject-drop"},
        "api": {"LOG": "debug"}}
    assert deploy_overrides(["worker2:A=b=c"], topology) == {"worker2": {"A": "b=c"}}
    for bad, message in (("workers", "expected TARGET:KEY=VALUE"), ("mailers:A=1", "no node or role 'mailers'"),
                         ("workers:=1", "expected TARGET:KEY=VALUE")):
        with pytest.raises(HarnessError, match=message):
            deploy_overrides([bad], topology)


def test_a_queue_leader_fault_takes_its_queue_from_the_stack_file():
    from harness.schedule import Schedule

    step = [{"at": 0, "fault": "rabbitmq-leader-stop", "duration": 5}]
    Schedule.from_data(step, load_stack_file(shipped_stack("default"), RunParams(run_id="u", cookie="c")))
    Schedule.from_data([{**step[0], "params": {"queue": "notify.work"}}], parse(OWN))
    with pytest.raises(HarnessError, match="step 1: rabbitmq-leader-stop needs params.queue: the notify stack "
                                           "file declares no x-chaos.queues"):
        Schedule.from_data(step, parse(OWN))


@pytest.mark.parametrize("ids, expected", [("{campaign}:{recipient}", "c7:+336"), ("{recipient}@{campaign}", "+336@c7"),
                                           ("{campaign}-{x}-{recipient}", None), ("{campaign}{recipient}}", None)])
def test_campaign_ids_are_a_template_of_campaign_and_recipient_only(ids, expected):
    text = OWN.replace("  provider: {node: provider", "    campaign: {path: /c, body: {c: \"{campaign}\", "
                       f"r: \"{{recipients}}\"}}, ids: \"{ids}\"}}\n  provider: {{node: provider", 1)
    if expected is None:
        with pytest.raises(HarnessError, match="x-chaos.client.campaign.ids: a template with {campaign} and "
                                               "{recipient}, and no other"):
            parse(text)
    else:
        assert parse(text).app.client.campaign_id("c7", "+336") == expected
