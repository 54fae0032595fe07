"""The `Kind` interface and its registry (built-in kinds, kinds registered in code, entry points)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

from harness.errors import HarnessError

if TYPE_CHECKING:
    from stack.health import Check
    from stack.stack import Stack
    from stack.topology import NodeSpec

ENTRY_POINT_GROUP = "chaos_harness.kinds"
BUILT_IN = ("rabbitmq", "zookeeper", "redis", "sentinel", "proxy", "service")
GENERIC = "service"


class Kind:
    """What nodes of one kind can do. Subclasses set `name` and implement `serving`."""

    name: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()  # the roles (NodeSpec.role) of this kind; default (name,)
    service: ClassVar[bool] = False  # an app service: started once the infrastructure is ready
    group: ClassVar[bool] = False  # readiness judges all nodes of the kind whenever one is asked about
    # Kinds whose nodes name these kinds' nodes in /etc/hosts (pinned addresses) instead of asking
    # Docker's DNS: a stopped container's name stops resolving, and a lookup whose answer is lost blocks
    # its caller for the resolver's 5 s (see `hosts`).
    pinned_peers: ClassVar[tuple[str, ...]] = ()

    def hosts(self, topology, node: "NodeSpec") -> list[str]:
        """Names the node resolves from its own /etc/hosts, at addresses that stay the same across
        restarts (`Stack.node_ip`): the nodes of the kinds in `pinned_peers`."""
        return [n.name for n in topology.nodes if n.role in self.pinned_peers and n.name != node.name]

    def serving(self, stack: "Stack", node: str) -> tuple[bool, str]:
        """Whether the node answers on its own protocol now, and what was seen."""
        raise NotImplementedError

    def ready(self, stack: "Stack", node: str) -> bool:
        """A cheap test, for nodes that others must not start before (`NodeSpec.ready_before`)."""
        return self.serving(stack, node)[0]

    def checks(self, stack: "Stack", nodes: list["NodeSpec"]) -> list["Check"]:
        """Readiness checks for `nodes` (all of this kind; for a group kind, the whole group)."""
        from stack.health import Check

        return [Check(f"{self.name} {n.name} serves", n.name, lambda s, name=n.name: self.serving(s, name))
                for n in nodes]

    def settled_checks(self, stack: "Stack", nodes: list["NodeSpec"]) -> list["Check"]:
        """Checks for nodes found ready before and disturbed by nothing since (no fault, deploy, stop,
        or Docker event on the run: stack/reset.py): what can still go wrong on its own. Default: the
        full `checks`; a kind whose full check is costly may answer with less."""
        return self.checks(stack, nodes)


_KINDS: dict[str, Kind] = {}  # role -> kind
_loaded = False


def register_kind(cls: type[Kind]) -> type[Kind]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    instance = cls()
    for role in cls.roles or (cls.name,):
        if role in _KINDS and type(_KINDS[role]) is not cls:
            raise ValueError(f"role {role!r} is claimed by kinds {_KINDS[role].name!r} and {cls.name!r}")
        _KINDS[role] = instance
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILT_IN:
        importlib.import_module(f"stack.kinds.{module}")
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a broken plug-in is named, not a traceback
            raise HarnessError(f"kind plug-in {entry.name!r} ({entry.value}) does not load: {exc}") from None


def kind_of(role: str) -> Kind:
    """The kind of nodes with this role; roles no kind claims are generic services."""
    _load()
    return _KINDS.get(role) or _KINDS[GENERIC]


def known_kinds() -> dict[str, Kind]:
    _load()
    return dict(_KINDS)
