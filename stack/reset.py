"""Between tests, bring a running stack back to a clean, hardened, healthy state without rebuilding it.

Toxics removed, partitions healed, stopped or paused nodes started, services redeployed to their
hardened spec, consumers stopped while queues are purged, Redis flushed, campaign state in ZooKeeper
cleared and the sink emptied, so nothing of one test is delivered into the next.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from stack import health
from stack.topology import PROXY_API_PORT, REDIS_MASTER_NAME, SENTINEL_PORT

if TYPE_CHECKING:
    from stack.stack import Stack

CONSUMER_ROLES = ("worker", "scheduler")
ZK_STATE_PATHS = ("/dispatch/campaigns", "/dispatch/progress")

CLEAR_ZK = """
import os, sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=os.environ["ZK_HOSTS"], timeout=10)
zk.start(timeout=20)
for path in sys.argv[1:]:
    zk.delete(path, recursive=True) if zk.exists(path) else None
zk.stop()
"""


def _heal_containers(stack: "Stack") -> None:
    for node in stack.topology.nodes:
        container = stack.container(node.name)
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()


def _redeploy_drifted_services(stack: "Stack") -> list[str]:
    """Redeploy every service whose running env is not its hardened spec (a switch left on, say)."""
    from faults.deploy import deployed_env

    redeployed = []
    from stack.kinds import kind_of

    for node in stack.topology.nodes:
        if not kind_of(node.role).service:
            continue
        env = deployed_env(stack.container(node.name))
        drift = {k for k, v in node.env.items() if env.get(k) != v}
        drift |= {k for k in env if k.startswith("CHAOS_") and k not in node.env}
        if drift:
            stack.redeploy(node.name, None, wait=False)
            redeployed.append(node.name)
    return redeployed


def redis_master(stack: "Stack") -> str:
    sentinel = stack.topology.names("sentinel")[0]
    code, out = stack.exec(sentinel, ["redis-cli", "-p", str(SENTINEL_PORT), "sentinel",
                                      "get-master-addr-by-name", REDIS_MASTER_NAME])
    if code != 0 or not out.split():
        raise HarnessError(f"{sentinel}: cannot name the Redis master: {out.strip()}")
    return out.split()[0]


def _purge_queues(stack: "Stack") -> None:
    import pika

    from stack.services import broker

    params = pika.URLParameters(stack.amqp_url())
    params.socket_timeout = 10
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        for queue in broker.QUEUES:
            channel.queue_purge(queue)
    finally:
        connection.close()


def _clear_state(stack: "Stack") -> None:
    import requests

    _purge_queues(stack)
    master = redis_master(stack)
    code, out = stack.exec(master, ["redis-cli", "flushall"])
    if code != 0 or "OK" not in out:
        raise HarnessError(f"{master}: FLUSHALL failed: {out.strip()}")
    code, out = stack.exec("api", ["python3", "-c", CLEAR_ZK, *ZK_STATE_PATHS], timeout=40)
    if code != 0:
        raise HarnessError(f"api: could not clear campaign state in ZooKeeper: {out.strip()[-300:]}")
    response = requests.post(f"http://127.0.0.1:{stack.host_port('sink', 8080)}/reset", timeout=10)
    if response.status_code >= 300:
        raise HarnessError(f"sink: POST /reset answered {response.status_code}")


def reset_stack(stack: "Stack") -> float:
    """Reset a running stack (see the module docstring); returns the seconds it took."""
    from faults.toxiproxy.client import ToxiproxyClient

    started = time.monotonic()
    from faults import sweep

    sweep.sweep(stack.client)  # partitions and toxics a dead runner left behind
    _heal_containers(stack)
    ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}").reset()
    _redeploy_drifted_services(stack)
    consumers = [n for n in stack.topology.nodes if n.role in CONSUMER_ROLES]
    for node in consumers:
        stack.container(node.name).stop(timeout=5)
    infra = [n for n in stack.topology.nodes if n.role not in CONSUMER_ROLES]
    stack.wait_healthy(infra)
    _clear_state(stack)
    for node in consumers:
        stack.container(node.name).start()
    stack.wait_healthy(consumers)
    return time.monotonic() - started
