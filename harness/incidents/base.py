"""What every incident shares: its declaration, its slots, the registry, and `build`, which checks a
stack against what an incident needs and returns the `Scenario` to run (one line when it cannot)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import HarnessError
from harness.scenario import Scenario, WorkloadSpec

if TYPE_CHECKING:
    from stack.app import SlotBinding
    from stack.topology import Topology

VARIANTS = ("vulnerable", "hardened")
# About 30 s of steady load: long enough for a fault and its heal to land inside it; then the drain.
STEADY = WorkloadSpec(clients=4, rate=30.0, duration_s=30.0)
DRAIN_S = 35.0
# Slots bound to the reference app's names unless the stack file (x-chaos.incidents.slots) or the
# caller says otherwise: one name serves as the node target (a role or its plural) and the client group.
DEFAULT_SLOTS = {"senders": "workers", "leader": "scheduler", "api": "api"}
SLOT_HELP = {"senders": "the sender workers (the nodes that deliver to the provider)",
             "leader": "the leader-elected scheduler (the nodes that campaign for leadership)",
             "api": "the service behind the client (the node the workload posts to)"}
INPUT_HELP = {"bug": "the env that switches the app's bug on (the vulnerable variant)",
              "misconfig": "the env a bad deploy pushes (both variants)"}


@dataclass(frozen=True)
class Story:
    incident: str   # what happened in production
    fault: str      # what the harness does to reproduce it
    invariant: str  # what must hold, and what the vulnerable app breaks


@dataclass(frozen=True)
class Slots:
    """Slot name -> (node target, client group), for one run: what the schedule function reads."""

    bound: dict[str, tuple[str, str]]

    def nodes(self, slot: str) -> str:
        return self.bound[slot][0]

    def links(self, slot: str) -> str:
        return self.bound[slot][1]


# schedule(slots, pushed) -> steps as in a schedule file; `pushed` is the env the incident's deploy step
# pushes in this variant (the misconfiguration, and the bug when the bug travels with the deploy).
ScheduleFn = Callable[[Slots, dict[str, str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Incident:
    name: str                     # short and stable: `chaos-harness run incident:NAME`
    title: str                    # one line, as a post-mortem's title
    story: Story
    schedule: ScheduleFn
    expect: frozenset[str]        # what the vulnerable variant must be found to violate
    workload: WorkloadSpec
    drain_s: float
    slots: dict[str, str] = field(default_factory=dict)  # slot -> "nodes", "links" or "both": how it is used
    kinds: tuple[str, ...] = ()   # node kinds the stack must run (rabbitmq, zookeeper, redis, sentinel)
    link_kind: str | None = None  # a `links` slot's group must reach a node of this kind
    campaigns: bool = False       # the client must declare campaigns
    inputs: tuple[str, ...] = ("bug",)
    bug_on: str | None = None     # slot whose nodes get the bug before the load; None: the deploy step pushes it

    def line(self) -> str:
        return f"{self.name:18} {self.title} (fault: {self.story.fault.rstrip('.')})"


INCIDENTS: dict[str, Incident] = {}


def register(incident: Incident) -> Incident:
    if incident.name in INCIDENTS and INCIDENTS[incident.name] is not incident:
        raise ValueError(f"incident name {incident.name!r} registered twice")
    INCIDENTS[incident.name] = incident
    return incident


def all_incidents() -> dict[str, Incident]:
    """Import every module of this package, so each registers itself; the registry, by name."""
    import importlib
    import pkgutil

    import harness.incidents as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base":
            importlib.import_module(f"harness.incidents.{module.name}")
    return dict(sorted(INCIDENTS.items()))


def get_incident(name: str) -> Incident:
    known = all_incidents()
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise HarnessError(f"unknown incident {name!r} ({hint}known: {', '.join(known)})")
    return known[name]


def parse_pairs(specs: list[str], flag: str, sep: str = "=") -> list[tuple[str, str]]:
    """`--bind SLOT=TARGET`, `--input NAME:KEY=VALUE` as pairs; one line for a malformed one."""
    out = []
    for spec in specs:
        head, found, rest = spec.partition(sep)
        if not found or not head or not rest:
            raise HarnessError(f"{flag} {spec!r}: expected {'SLOT=TARGET' if sep == '=' else 'NAME:KEY=VALUE'}")
        out.append((head, rest))
    return out


def build(name: str, topology: "Topology", variant: str = "hardened", *, bind: dict[str, str] | None = None,
          inputs: dict[str, dict[str, str]] | None = None) -> tuple[Scenario, frozenset[str]]:
    """The scenario of incident `name` in `variant` on `topology`, and the violations it must show (none:
    valid). `bind` (slot -> name) and `inputs` (input -> env) override the stack file's. Everything is
    checked here, before any container starts; a stack lacking what the incident needs is one line."""
    incident = get_incident(name)
    if variant not in VARIANTS:
        raise HarnessError(f"incident {name}: unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    where = f"incident {name}"
    app = topology.app
    if app is None:
        raise HarnessError(f"{where} needs an app to drive; the {topology.name} stack declares none "
                           "(x-chaos.client and x-chaos.provider)")
    for kind in incident.kinds:
        if not topology.names(kind):
            raise HarnessError(f"{where} needs a {kind} node; the {topology.name} stack has none")
    if incident.campaigns and app.client.campaign is None:
        raise HarnessError(f"{where} needs a client that submits campaigns; the {topology.name} stack's "
                           "x-chaos.client declares no campaign")
    slots = _bind_slots(incident, topology, bind or {})
    given = dict(app.incidents.inputs.get(name, {})) if app.incidents else {}
    for key, env in (inputs or {}).items():
        if key not in incident.inputs:
            raise HarnessError(f"{where} takes no input {key!r} (inputs: {', '.join(incident.inputs)})")
        given[key] = env
    wanted = [k for k in incident.inputs if k != "bug" or variant == "vulnerable"]
    for key in wanted:
        if not given.get(key):
            raise HarnessError(f"{where} ({variant}) needs input {key!r}, {INPUT_HELP.get(key, key)}: give "
                               f"x-chaos.incidents.{name}.{key} in the {topology.name} stack file, or "
                               f"--input {key}:KEY=VALUE")
    bug = given.get("bug", {}) if variant == "vulnerable" else {}
    deploy: dict[str, dict[str, str]] = {}
    pushed = dict(given.get("misconfig", {}))
    if incident.bug_on is None:
        pushed.update(bug)
    else:
        from faults.roles import possible_nodes

        nodes, _ = possible_nodes([slots.nodes(incident.bug_on)], topology)
        deploy = {n.name: dict(bug) for n in topology.nodes if n.name in nodes and bug}
    scenario = Scenario(name=f"{name}-{variant}", schedule=incident.schedule(slots, pushed), deploy=deploy,
                        workload=incident.workload, drain_s=incident.drain_s)
    try:
        scenario.validate(topology)
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    return scenario, (incident.expect if variant == "vulnerable" else frozenset())


def _bind_slots(incident: Incident, topology: "Topology", bind: dict[str, str]) -> Slots:
    from faults.roles import _is_node_target, possible_nodes

    where = f"incident {incident.name}"
    for slot in bind:
        if slot not in incident.slots:
            raise HarnessError(f"{where} has no slot {slot!r} (slots: {', '.join(incident.slots) or 'none'})")
    filed: dict[str, "SlotBinding"] = topology.app.incidents.slots if topology.app.incidents else {}
    groups = {l.group for l in topology.links}
    bound: dict[str, tuple[str, str]] = {}
    for slot, use in incident.slots.items():
        if slot in bind:
            nodes = links = bind[slot]
            origin = f"--bind {slot}={bind[slot]}"
        elif slot in filed:
            nodes, links = filed[slot].nodes, filed[slot].links
            origin = f"{filed[slot].where}: x-chaos.incidents.slots.{slot}"
        else:
            nodes = links = DEFAULT_SLOTS[slot]
            origin = f"by default {slot}={nodes}, {SLOT_HELP[slot]}"
        bound[slot] = (nodes, links)
        if use in ("nodes", "both"):
            found, _ = possible_nodes([nodes], topology) if _is_node_target(nodes, topology) else (set(), True)
            if not found:
                raise HarnessError(f"{where} needs slot {slot} to name nodes, and {nodes!r} names none in the "
                                   f"{topology.name} stack ({origin}; bind it in x-chaos.incidents.slots "
                                   f"or with --bind {slot}=ROLE)")
        if use in ("links", "both"):
            if links not in groups:
                raise HarnessError(f"{where} needs slot {slot} to name a client group of x-chaos.links, and "
                                   f"{links!r} is none in the {topology.name} stack ({origin}; groups: "
                                   f"{', '.join(sorted(groups)) or 'none'})")
            reach = set(topology.names(incident.link_kind)) if incident.link_kind else None
            if reach is not None and not any(l.group == links and l.node in reach for l in topology.links):
                raise HarnessError(f"{where} needs slot {slot}'s client group {links!r} to reach a "
                                   f"{incident.link_kind} node through the proxy; in the {topology.name} stack "
                                   "it has no such link")
    return Slots(bound)
