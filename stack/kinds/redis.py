"""Redis nodes: ready when there is one master and every other node is its replica with the link up."""

from __future__ import annotations

from harness.errors import HarnessError
from stack import health
from stack.kinds.base import Kind, register_kind
from stack.topology import REDIS_PORT


def ping(stack, node: str, port: int) -> tuple[bool, str]:
    from stack import resp

    out = str(resp.command(stack, node, port, "PING"))
    return out == "PONG", out[:80]


def primary(stack) -> str:
    """The node a Sentinel names as master (the first Sentinel that answers), else the one INFO calls master."""
    for sentinel in stack.topology.names("sentinel"):
        try:
            view = health.sentinel_master(stack, sentinel)
        except Exception:
            continue
        host = view.get("ip", "")
        if host in stack.topology.names("redis"):
            return host
    for node in stack.topology.names("redis"):
        try:
            if health.redis_info(stack, node).get("role") == "master":
                return node
        except Exception:
            continue
    raise HarnessError("no Redis primary found: no Sentinel and no Redis node names one")


@register_kind
class Redis(Kind):
    name = "redis"
    group = True
    # A replica resolves its master's name on every reconnect, blocking: with Docker's DNS a killed
    # master's name stops resolving, and one lost answer stalls the replica 5 s (longer than Sentinel's
    # down-after), so a failover can find no good replica.
    pinned_peers = ("redis", "sentinel")

    def serving(self, stack, node: str) -> tuple[bool, str]:
        return ping(stack, node, REDIS_PORT)

    def checks(self, stack, nodes):
        names = [n.name for n in nodes]

        def probe(stack) -> tuple[bool, str]:
            infos = {n: health.redis_info(stack, n) for n in names}
            masters = [n for n, i in infos.items() if i.get("role") == "master"]
            links = {n: i.get("master_link_status") for n, i in infos.items() if i.get("role") == "slave"}
            ok = len(masters) == 1 and len(links) == len(names) - 1 and all(v == "up" for v in links.values())
            return ok, f"masters {masters} replica links {links}"

        return [health.Check(f"Redis {names}: one master, replicas with master_link_status:up", names[-1], probe,
                             tuple(names))]
