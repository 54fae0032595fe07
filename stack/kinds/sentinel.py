"""Redis Sentinels: ready when every Sentinel names the same master and knows all the others."""

from __future__ import annotations

from stack import health
from stack.kinds.base import Kind, register_kind
from stack.kinds.redis import ping
from stack.topology import SENTINEL_PORT


@register_kind
class Sentinel(Kind):
    name = "sentinel"
    group = True
    # Sentinel (resolve-hostnames yes) resolves names in its event loop, blocking. Through Docker's DNS
    # a killed master's name stops resolving, and one lost answer blocks the loop for the resolver's 5 s:
    # Sentinel enters TILT mode for 30 s and fails nothing over (redis/redis#12753). Seen in a soak: a
    # kill of the primary with no failover for 94 s.
    pinned_peers = ("redis", "sentinel")

    def serving(self, stack, node: str) -> tuple[bool, str]:
        return ping(stack, node, SENTINEL_PORT)

    def checks(self, stack, nodes):
        names = [n.name for n in nodes]

        def probe(stack) -> tuple[bool, str]:
            views = {n: health.sentinel_master(stack, n) for n in names}
            masters = {n: f"{v.get('ip')}:{v.get('port')}" for n, v in views.items()}
            others = {n: int(v.get("num-other-sentinels", "0")) for n, v in views.items()}
            flags_ok = all(v.get("flags") == "master" for v in views.values())
            ok = len(set(masters.values())) == 1 and all(o == len(names) - 1 for o in others.values()) and flags_ok
            return ok, f"masters {masters} other-sentinels {others}"

        return [health.Check(f"Sentinels {names} name one master and know each other", names[0], probe,
                             tuple(names))]
