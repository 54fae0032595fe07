"""Node kinds: what each kind of node can do, one module per kind, found through a registry.

A kind says how its nodes are judged ready (`checks`, `ready`), whether a node serves again after a
fault brought it back (`serving`), and whether it is an app service (started after the
infrastructure). `stack.health` and `faults.nodes` ask the kind of a node instead of spelling role
names. A kind from outside the package registers with `@register_kind`, or through the entry point
group `chaos_harness.kinds` (`name = "module:Class"`); a role no kind claims is a generic service.

    from stack.kinds import Kind, register_kind

    @register_kind
    class Memcached(Kind):
        name = "memcached"
        def serving(self, stack, node): ...
"""

from __future__ import annotations

from stack.kinds.base import Kind, kind_of, known_kinds, register_kind

__all__ = ["Kind", "kind_of", "known_kinds", "register_kind"]
