"""A fault runner SIGKILLed while its faults are in effect leaves nothing behind: the sweep (which the
reset before every run and `clean` call first) undoes every fault that changes a node's settings, and
`clean` then removes the run with nothing of it left.

One child process injects a fault of each kind that leaves state in a node or the broker (a CPU
quota, memory held, a broker alarm, a policy, a removed binding, DNS rules, packet rules, a clock
offset) into a stack this test owns, says so, and is killed with SIGKILL. Each effect is checked in
place before the kill, so the test fails if a fault did nothing, and gone after the sweep."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import pika
import pytest

from stack import cleanup
from tests.child_lines import wait_for_line
from tests.integration.test_faults_resources import datagrams_arriving, quota, redis_seconds

pytestmark = pytest.mark.chaos

QUEUE, EXCHANGE = "chaos-kill.q", "chaos-kill.x"

# Attaches to the test's run, injects every fault, says so and waits to be killed.
CHILD = f"""
import sys
from faults.base import FaultContext, get_fault
from harness.cli import _stack_from_run
from stack.docker_api import docker_client

stack, _ = _stack_from_run(docker_client(), sys.argv[1])
steps = [
    ("cpu-starve", ["redis2"], {{"cpus": 0.1}}),
    ("memory-pressure", ["redis2"], {{"mib": 32}}),
    ("rabbitmq-alarm", ["rmq1"], {{"resource": "memory"}}),
    ("queue-limit", [], {{"queues": "^{QUEUE}$", "max_length": 3, "overflow": "drop-head"}}),
    ("amqp-unbind", [], {{"exchange": "{EXCHANGE}", "queue": "{QUEUE}", "routing_key": "go"}}),
    ("dns-fail", ["zk1"], {{}}),
    ("packet", ["redis2"], {{"loss": 30}}),
    ("clock-skew", ["redis1"], {{"offset_s": 600}}),
]
for i, (name, targets, params) in enumerate(steps):
    fault = get_fault(name)(FaultContext(stack, step=f"k{{i}}", wait_timeout=60), targets, params)
    fault.inject()
    print("injected", name, flush=True)
print("all injected", flush=True)
input()
"""


@pytest.fixture(scope="module")
def owned_stack():
    """A small stack (infrastructure only) in a namespace of its own, so `clean` touches nothing else."""
    from stack.stack import Stack

    ns = "test-midfault-" + secrets.token_hex(3)
    saved = os.environ.get("CHAOS_NAMESPACE")
    os.environ["CHAOS_NAMESPACE"] = ns
    try:
        with Stack("small", with_services=False) as stack:
            yield stack, ns
    finally:
        if saved is None:
            os.environ.pop("CHAOS_NAMESPACE", None)
        else:
            os.environ["CHAOS_NAMESPACE"] = saved


def amqp(stack):
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url()))
    return connection, connection.channel()


def routed(stack) -> bool:
    """Whether the exchange routes "go" to the queue (asked of rabbitmqctl: publishers may be blocked)."""
    code, out = stack.exec("rmq1", ["rabbitmqctl", "-q", "list_bindings", "source_name", "destination_name",
                                    "routing_key"], user="rabbitmq", timeout=30)
    assert code == 0, out
    return any(line.split() == [EXCHANGE, QUEUE, "go"] for line in out.splitlines())


def alarm_clear(stack) -> bool:
    code, _ = stack.exec("rmq1", ["rabbitmq-diagnostics", "-q", "check_local_alarms"], user="rabbitmq", timeout=30)
    return code == 0


def policies(stack) -> str:
    code, out = stack.exec("rmq1", ["rabbitmqctl", "-q", "list_policies"], user="rabbitmq", timeout=30)
    assert code == 0, out
    return out


def holders(stack) -> str:
    return stack.exec("redis2", ["sh", "-c", "ls /tmp/chaos-mem-*.pid 2>/dev/null; exit 0"])[1].strip()


def resolves(stack) -> bool:
    return stack.exec("zk1", ["getent", "hosts", "redis1"], timeout=8)[0] == 0


def helpers(stack) -> list:
    return stack.client.containers.list(all=True, filters={"label": [
        f"{cleanup.LABEL_KIND}=helper", f"{cleanup.LABEL_NAMESPACE}={cleanup.namespace()}"]})


def test_a_runner_killed_mid_fault_is_undone_by_the_sweep_and_clean_leaves_nothing(owned_stack):
    from faults import journal
    from faults.sweep import sweep

    stack, ns = owned_stack
    connection, ch = amqp(stack)
    ch.exchange_declare(EXCHANGE, "direct")
    ch.queue_declare(QUEUE)
    ch.queue_bind(QUEUE, EXCHANGE, "go")
    connection.close()
    assert routed(stack) and alarm_clear(stack) and resolves(stack) and quota(stack, "redis2") in (0, -1)

    child = subprocess.Popen([sys.executable, "-c", CHILD, stack.run_id], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ, CHAOS_REAPER="0"))
    try:
        wait_for_line(child.stdout, lambda line: line.startswith("all injected"), 300, "injecting", child)
        # every fault is in effect while its runner lives
        assert quota(stack, "redis2") == 10000
        assert holders(stack)
        assert not alarm_clear(stack)
        assert "chaos-k3" in policies(stack)
        assert not routed(stack)
        assert not resolves(stack)
        assert len(helpers(stack)) == 2  # dns-fail's and packet's
        assert 590 < redis_seconds(stack, "redis1") - time.time() < 610
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    swept = sweep(stack.client)  # what the reset before a run, and `clean`, do first
    for name in ("cpu-starve on redis2", "memory-pressure on redis2", "rabbitmq-alarm on rmq1",
                 "amqp-unbind on", "clock-skew on redis1"):
        assert any(s.startswith(name) for s in swept), (name, swept)
    assert quota(stack, "redis2") in (0, -1)
    assert not holders(stack)
    assert alarm_clear(stack)
    assert "chaos-k" not in policies(stack)
    assert routed(stack)
    assert resolves(stack)
    assert helpers(stack) == []
    assert datagrams_arriving(stack, "redis1", "redis2") >= 980  # no loss rule left in redis2
    assert abs(redis_seconds(stack, "redis1") - time.time()) < 2
    assert not any(f.read_text().find(f'"namespace": "{ns}"') >= 0 for f in journal._folder().glob("*.json"))

    result = subprocess.run([sys.executable, "-m", "harness.cli", "clean"], capture_output=True, text=True,
                            env=dict(os.environ), timeout=180)
    assert result.returncode == 0, result.stderr
    client = stack.client
    label = {"label": f"{cleanup.LABEL_NAMESPACE}={ns}"}
    assert client.containers.list(all=True, filters=label) == [] and client.networks.list(filters=label) == []
