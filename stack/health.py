"""Readiness of a run's nodes, judged on real cluster facts, each wait with a deadline.

RabbitMQ: `cluster_status` on every node lists all nodes running. ZooKeeper: every node serves and
the ensemble has exactly one leader. Redis: the replica's link to its primary is up. Sentinel: every
Sentinel names the same master and knows the others. Proxy: its API answers.
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

    def wait(self, stack: "Stack", deadline: float) -> None:
        started = time.monotonic()

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
                f"{self.node}: not ready after {stack.boot_timeout:.0f}s: {self.what} (last: {detail})",
                detail=stack.logs_tail(self.node))

        wait_for(self.what, probe, deadline, on_timeout=timeout)
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


def node_ready(stack: "Stack", node: str) -> bool:
    """A cheap readiness test of one node, for nodes that others must not start before."""
    role = stack.topology.node(node).role
    if role == "rabbitmq":
        return _amqp_listening(stack, node)
    raise HarnessError(f"no readiness probe for {role} node {node}")


def _rabbit_probe(node: str, expected: list[str]) -> Probe:
    def probe(stack: "Stack") -> tuple[bool, str]:
        # The CLI costs an Erlang VM start per call: only ask it once every node speaks AMQP.
        silent = [n for n in expected if not _amqp_listening(stack, n)]
        if silent:
            return False, f"AMQP not answering yet on {silent}"
        status = rabbitmq_cluster_status(stack, node)
        running = sorted(status.get("running_nodes", []))
        want = sorted(f"rabbit@{n}" for n in expected)
        return running == want, f"running nodes {running}"
    return probe


def zk_four_letter(stack: "Stack", node: str, word: str = "srvr") -> str:
    script = ("import socket,sys;s=socket.create_connection(('127.0.0.1',%d),2);s.sendall(%r);"
              "sys.stdout.write(s.makefile(errors='replace').read())" % (ZK_PORT, word.encode()))
    code, out = stack.exec(node, ["python3", "-c", script], timeout=5)
    if code != 0:
        raise RuntimeError(out.strip().splitlines()[-1] if out.strip() else f"exit {code}")
    return out


def zk_mode(stack: "Stack", node: str) -> str:
    out = zk_four_letter(stack, node, "srvr")
    match = re.search(r"^Mode: (\w+)", out, re.M)
    if not match:
        raise RuntimeError(out.strip().splitlines()[0] if out.strip() else "no answer")
    return match.group(1)


def _zk_probe(nodes: list[str]) -> Probe:
    def probe(stack: "Stack") -> tuple[bool, str]:
        modes = {n: zk_mode(stack, n) for n in nodes}
        leaders = [n for n, m in modes.items() if m in ("leader", "standalone")]
        return len(leaders) == 1 and all(m in ("leader", "follower", "standalone") for m in modes.values()), \
            f"modes {modes}"
    return probe


def redis_info(stack: "Stack", node: str, port: int = 6379, section: str = "replication") -> dict[str, str]:
    code, out = stack.exec(node, ["redis-cli", "-p", str(port), "info", section], timeout=5)
    if code != 0:
        raise RuntimeError(out.strip() or f"exit {code}")
    return dict(line.split(":", 1) for line in out.replace("\r", "").splitlines() if ":" in line)


def _redis_replication_probe(nodes: list[str]) -> Probe:
    """One master; every other node its replica with the link up (whichever node is master now)."""
    def probe(stack: "Stack") -> tuple[bool, str]:
        infos = {n: redis_info(stack, n) for n in nodes}
        masters = [n for n, i in infos.items() if i.get("role") == "master"]
        links = {n: i.get("master_link_status") for n, i in infos.items() if i.get("role") == "slave"}
        ok = len(masters) == 1 and len(links) == len(nodes) - 1 and all(v == "up" for v in links.values())
        return ok, f"masters {masters} replica links {links}"
    return probe


def sentinel_master(stack: "Stack", node: str) -> dict[str, str]:
    code, out = stack.exec(node, ["redis-cli", "-p", str(SENTINEL_PORT), "sentinel", "master",
                                  REDIS_MASTER_NAME], timeout=5)
    if code != 0 or "ERR" in out[:10]:
        raise RuntimeError(out.strip() or f"exit {code}")
    items = out.strip().splitlines()
    return dict(zip(items[0::2], items[1::2]))


def _sentinel_probe(nodes: list[str]) -> Probe:
    def probe(stack: "Stack") -> tuple[bool, str]:
        views = {n: sentinel_master(stack, n) for n in nodes}
        masters = {n: f"{v.get('ip')}:{v.get('port')}" for n, v in views.items()}
        others = {n: int(v.get("num-other-sentinels", "0")) for n, v in views.items()}
        flags_ok = all(v.get("flags") == "master" for v in views.values())
        ok = len(set(masters.values())) == 1 and all(o == len(nodes) - 1 for o in others.values()) and flags_ok
        return ok, f"masters {masters} other-sentinels {others}"
    return probe


def _proxy_probe(stack: "Stack") -> tuple[bool, str]:
    import requests

    url = f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}/version"
    response = requests.get(url, timeout=2)
    return response.status_code == 200, f"GET /version -> {response.status_code}"


def _http_health_probe(node: str, port: int) -> Probe:
    def probe(stack: "Stack") -> tuple[bool, str]:
        script = ("import urllib.request,sys;r=urllib.request.urlopen('http://127.0.0.1:%d/health',timeout=3);"
                  "sys.stdout.write(r.read().decode())" % port)
        code, out = stack.exec(node, ["python3", "-c", script], timeout=6)
        return code == 0, out.strip().splitlines()[-1][:200] if out.strip() else f"exit {code}"
    return probe


def checks_for(stack: "Stack", nodes: list[NodeSpec]) -> list[Check]:
    names = {n.name for n in nodes}
    topo = stack.topology
    checks: list[Check] = []
    # A group check judges the whole group whenever one of its nodes is asked about (a redeploy of
    # rmq2 is healthy when the cluster runs all three again).
    def group(role: str) -> list[str]:
        members = topo.names(role)
        return members if names & set(members) else []

    rabbits = group("rabbitmq")
    if rabbits:
        checks.append(Check(f"RabbitMQ cluster_status on {rabbits[0]} shows {rabbits} running", rabbits[0],
                            _rabbit_probe(rabbits[0], rabbits), tuple(rabbits)))
    zks = group("zookeeper")
    if zks:
        checks.append(Check(f"ZooKeeper ensemble {zks} has one leader", zks[0], _zk_probe(zks), tuple(zks)))
    redis_nodes = group("redis")
    if redis_nodes:
        checks.append(Check(f"Redis {redis_nodes}: one master, replicas with master_link_status:up",
                            redis_nodes[-1], _redis_replication_probe(redis_nodes), tuple(redis_nodes)))
    sentinels = group("sentinel")
    if sentinels:
        checks.append(Check(f"Sentinels {sentinels} name one master and know each other", sentinels[0],
                            _sentinel_probe(sentinels), tuple(sentinels)))
    if "proxy" in names:
        checks.append(Check("proxy API answers", "proxy", _proxy_probe))
    for node in nodes:
        if node.role in ("api", "worker", "sink", "scheduler"):
            port = int(node.env.get("HTTP_PORT", "8080"))
            checks.append(Check(f"{node.role} {node.name} /health answers", node.name,
                                _http_health_probe(node.name, port)))
    return checks


# ---------------------------------------------------------------------------------------------- wiring

def configure_proxy(stack: "Stack") -> None:
    """Create every link of the topology in the proxy (through its Toxiproxy API)."""
    from faults.toxiproxy.client import ToxiproxyClient

    client = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}")
    client.populate([{"name": link.name, "listen": f"0.0.0.0:{link.listen_port}",
                      "upstream": f"{link.node}:{link.port}", "enabled": True}
                     for link in stack.topology.links])


def declare_broker_topology(stack: "Stack") -> None:
    """Declare exchanges and quorum queues once every broker node is online (replica count is fixed then)."""
    from stack.services import broker

    rabbits = stack.topology.names("rabbitmq")
    if not rabbits:
        return
    broker.declare(stack.amqp_url(), replicas=len(rabbits))
