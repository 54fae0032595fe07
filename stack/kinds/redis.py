"""Redis nodes: ready when there is one master and every other node is its replica with the link up."""

from __future__ import annotations

from harness.errors import HarnessError
from stack import health
from stack.kinds.base import Kind, register_kind
from stack.topology import REDIS_MASTER_NAME, REDIS_PORT, SENTINEL_PORT


def ping(stack, node: str, port: int) -> tuple[bool, str]:
    code, out = stack.exec(node, ["redis-cli", "-p", str(port), "ping"], timeout=5)
    return code == 0 and "PONG" in out, out.strip()[:80]


def primary(stack) -> str:
    """The Redis primary now: as the Sentinels name it, or, with no Sentinel, the node in the master role."""
    sentinels = stack.topology.names("sentinel")
    if sentinels:
        code, out = stack.exec(sentinels[0], ["redis-cli", "-p", str(SENTINEL_PORT), "sentinel",
                                              "get-master-addr-by-name", REDIS_MASTER_NAME])
        if code != 0 or not out.split():
            raise HarnessError(f"{sentinels[0]}: cannot name the Redis master: {out.strip()}")
        return out.split()[0]
    masters = [n for n in stack.topology.names("redis") if health.redis_info(stack, n).get("role") == "master"]
    if len(masters) != 1:
        raise HarnessError(f"Redis: expected one master, found {masters}")
    return masters[0]


@register_kind
class Redis(Kind):
    name = "redis"
    group = True

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
