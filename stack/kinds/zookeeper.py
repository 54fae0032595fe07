"""ZooKeeper nodes: ready when the ensemble has exactly one leader; serving when a node is in a quorum."""

from __future__ import annotations

from stack import health
from stack.kinds.base import Kind, register_kind

SERVING_MODES = ("leader", "follower", "standalone")


@register_kind
class ZooKeeper(Kind):
    name = "zookeeper"
    group = True

    def serving(self, stack, node: str) -> tuple[bool, str]:
        mode = health.zk_mode(stack, node)
        return mode in SERVING_MODES, f"mode {mode}"

    def checks(self, stack, nodes):
        names = [n.name for n in nodes]

        def probe(stack) -> tuple[bool, str]:
            modes = {n: health.zk_mode(stack, n) for n in names}
            leaders = [n for n, m in modes.items() if m in ("leader", "standalone")]
            return len(leaders) == 1 and all(m in SERVING_MODES for m in modes.values()), f"modes {modes}"

        return [health.Check(f"ZooKeeper ensemble {names} has one leader", names[0], probe, tuple(names))]
