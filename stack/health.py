"""Waiting on the readiness of a run's nodes, with deadlines, and the probes the kinds share.

What "ready" means is each node kind's to say (`stack/kinds/`): RabbitMQ's cluster_status lists every
node running, a ZooKeeper ensemble has exactly one leader, Redis replicas have their link up, every
Sentinel names the same master, the proxy's API answers, a service's /health answers.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from harness.errors import HarnessError
from stack.topology import PROXY_API_PORT, REDIS_MASTER_NAME, SENTINEL_PORT, ZK_PORT, NodeSpec

if TYPE_CHECKING:
    from stack.stack import Stack

Probe = Callable[["Stack"], tuple[bool, str]]


def wait_for(what: str, probe: Callable[[], tuple[bool, str]], deadline: float,
             interval: float = 0.5, on_timeout: Callable[[str], HarnessError] | None = None) -> str:
    """Poll `probe` until it says ok or the deadline passes; the error says what we waited for."""
    detail = "not probed yet"
    while True:
        try:
            ok, detail = probe()
        except HarnessError:
            raise
        except Exception as exc:  # a probe that cannot connect yet is simply not ready
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if ok:
            return detail
        if time.monotonic() >= deadline:
            if on_timeout:
                raise on_timeout(detail)
            raise HarnessError(f"timed out waiting for {what} (last: {detail})")
        time.sleep(interval)


@dataclass(frozen=True)
class Check:
    """A readiness condition about some nodes; `node` is the one whose log explains a failure."""

    what: str
    node: str
    probe: Probe
    nodes: tuple[str, ...] = ()
    timeout_s: float | None = None  # its own deadline (a stack file's healthcheck x-deadline)
    interval_s: float = 0.5

    def wait(self, stack: "Stack", deadline: float) -> None:
        started = time.monotonic()
        if self.timeout_s is not None:
            deadline = started + self.timeout_s

        def probe() -> tuple[bool, str]:
            for name in self.nodes or (self.node,):
                container = stack.container(name)
                container.reload()
                if container.status in ("exited", "dead"):
                    raise HarnessError(
                        f"{name}: container {container.status} while waiting for {self.what}",
                        detail=stack.logs_tail(name))
            return self.probe(stack)

        def timeout(detail: str) -> HarnessError:
            return HarnessError(
                f"{self.node}: not ready after {time.monotonic() - started:.0f}s: {self.what} (last: {detail})",
                detail=stack.logs_tail(self.node))

        wait_for(self.what, probe, deadline, interval=self.interval_s, on_timeout=timeout)
        stack.progress(f"[stack] ready: {self.what} ({time.monotonic() - started:.1f}s)")


# ---------------------------------------------------------------------------------------------- probes

def rabbitmq_cluster_status(stack: "Stack", node: str) -> dict:
    code, out = stack.exec(node, ["rabbitmqctl", "-q", "cluster_status", "--formatter", "json"],
                           user="rabbitmq", timeout=30)
    if code != 0:
        raise RuntimeError(out.strip().splitlines()[-1] if out.strip() else f"exit {code}")
    return json.loads(out[out.index("{"):])


def _amqp_listening(stack: "Stack", node: str) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", stack.host_port(node, 5672)), timeout=1) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            sock.settimeout(2)
            return sock.recv(1) == b"\x01"  # connection.start frame: the broker app is up
    except OSError:
        return False


def zk_four_letter(stack: "Stack", node: str, word: str = "srvr", timeout: float = 2.0) -> str:
    """A ZooKeeper four-letter word's answer, asked from the host at the node's address on the run network
    (as service healthchecks are): nothing in the node's image is needed (an official ZooKeeper image has
    no python3), and no `docker exec` is paid per probe. A node that does not run is said at once."""
    import socket

    container = stack.container(node)
    container.reload()
    if container.status != "running":
        raise RuntimeError(f"container {container.status}")
    with socket.create_connection(stack.reach(stack.node_ip(node), ZK_PORT), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):  # the server closes after its answer
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def zk_mode(stack: "Stack", node: str) -> str:
    out = zk_four_letter(stack, node, "srvr")
    match = re.search(r"^Mode: (\w+)", out, re.M)
    if not match:
        raise RuntimeError(out.strip().splitlines()[0] if out.strip() else "no answer")
    return match.group(1)


def redis_info(stack: "Stack", node: str, port: int = 6379, section: str = "replication") -> dict[str, str]:
    from stack import resp

    out = resp.command(stack, node, port, "INFO", section)
    return dict(line.split(":", 1) for line in str(out).replace("\r", "").splitlines() if ":" in line)


def sentinel_master(stack: "Stack", node: str) -> dict[str, str]:
    from stack import resp

    items = resp.command(stack, node, SENTINEL_PORT, "SENTINEL", "MASTER", REDIS_MASTER_NAME)
    if not isinstance(items, list):
        raise RuntimeError(f"SENTINEL MASTER answered {items!r}")
    return {str(k): str(v) for k, v in zip(items[0::2], items[1::2])}


def node_ready(stack: "Stack", node: str) -> bool:
    """A cheap readiness test of one node, for nodes that others must not start before."""
    from stack.kinds import kind_of

    return kind_of(stack.topology.node(node).role).ready(stack, node)


def checks_for(stack: "Stack", nodes: list[NodeSpec], settled: bool = False) -> list[Check]:
    """The readiness checks of `nodes`, asked of each node's kind. A group kind judges the whole group
    whenever one of its nodes is asked about (a redeploy of rmq2 is healthy when the cluster runs all
    three again). `settled`: nothing has disturbed these nodes since they were last found ready, so each
    kind's `settled_checks` will do (stack/reset.py)."""
    from stack.kinds import kind_of

    checks: list[Check] = []
    groups_done: set[str] = set()
    for spec in nodes:
        kind = kind_of(spec.role)
        ask = kind.settled_checks if settled else kind.checks
        if not kind.group:
            checks += ask(stack, [spec])
        elif spec.role not in groups_done:
            groups_done.add(spec.role)
            checks += ask(stack, [n for n in stack.topology.nodes if n.role == spec.role])
    return checks


# ---------------------------------------------------------------------------------------------- wiring

def configure_proxy(stack: "Stack") -> None:
    """Create every link of the topology in the proxy (through its Toxiproxy API); none without a proxy."""
    from faults.toxiproxy.client import ToxiproxyClient

    if not stack.topology.names("proxy"):
        return
    client = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}")
    client.populate([{"name": link.name, "listen": f"0.0.0.0:{link.listen_port}",
                      "upstream": f"{link.node}:{link.port}", "enabled": True}
                     for link in stack.topology.links])
