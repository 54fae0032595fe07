"""Hypothesis strategies for fault schedules, drawn from the fault registry and a topology's targets.

`schedules(topology)` generates `Schedule` values (the same values a schedule file holds), ordered so
that Hypothesis shrinks towards the simplest one: one step, the mildest fault, at 0 s, for the shortest
time, on the first target, with its default parameters.

Every fault of the registry is searched; what this module knows of a fault it asks the fault:
- its parameters' ranges come from each `Param` (`search`, within `bounds`, in its `unit`); strings
  and lists naming things keep their default, so a generated `deploy`, `rolling-deploy` or `rollback`
  redeploys the node with its configuration unchanged (no switches, no env): a restart by SIGTERM and
  `grace` through a new container, a fault and not the bug itself; as the stack keeps no volumes, a
  new container starts with an empty disk, so these (`replaces_containers`) target app services only;
- `short = False` (partition, rolling-restart, deploy, rolling-deploy, rollback: their heals or their
  new containers take longer than a run of a few seconds drains) leaves a fault to the long searches
  (`long_faults=True`, the nightly profile); the short ones (ci) draw only short faults;
- `acts_on_groups` (partition, rolling-*) gets a role of several nodes as its target, and its choices
  (a partition's grouping) are drawn among those its `check_targets` accepts for that role;
- `follows` (rollback) is aimed at the latest step still in effect of the faults it follows (a deploy),
  so that it rolls that deploy back; with no such step it is not drawn, as it would hit nothing.
Node targets for the others are single nodes and live roles, never a whole quorum role, the proxy or
the sink (the sink records deliveries, the proxy carries every link): a short run must be able to heal.
The long searches add target modes after them: `minority:<role>` of each role of three nodes or more,
and `one:primaries`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.schedule import Schedule, Step

# Simplest first, by blast radius: the outside provider, then one link's traffic, then a node, then a
# cluster's leader, then the long faults. Faults not named here (new ones) come last, by name.
FAULT_ORDER = ("provider-outage", "latency", "slicer", "bandwidth", "slow-close", "limit-data", "timeout",
               "reset-peer", "link-down", "pause", "restart", "kill", "redis-failover",
               "rabbitmq-leader-stop", "zk-leader-kill", "deploy", "rollback", "rolling-restart",
               "rolling-deploy", "partition")

# The short shape (the ci profile); the nightly profile passes its own (harness.search.PROFILES).
MAX_STEPS = 3
MAX_AT_S = 8
MIN_DURATION_S = 2
MAX_DURATION_S = 8

# Live roles a node fault may name; quorum-queue leaders of the queues the app declares (x-chaos.queues).
LIVE_NODE_TARGETS = ("redis-primary", "redis-replica", "zk-leader")


def fault_names(faults: Iterable[str] | None = None, long_faults: bool = False) -> list[str]:
    """The searched faults, simplest first: those named, else the registry's short faults (every fault
    with `long_faults`)."""
    from faults.base import load_all

    registry = load_all()
    names = [n for n, f in registry.items() if f.short or long_faults] if faults is None else list(faults)
    for name in names:
        if name not in registry:
            raise HarnessError(f"unknown fault {name!r} (known: {', '.join(sorted(registry))})")
    rank = {n: i for i, n in enumerate(FAULT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _is_service(role: str) -> bool:
    from stack.kinds import kind_of

    return kind_of(role).service


def node_targets(topology, services_only: bool = False) -> list[str]:
    """Single nodes in topology order (not the proxy, nor the provider: it is the ground truth), then
    live roles; with `services_only`, the app services' nodes alone."""
    provider = topology.app.provider.node if topology.app else None
    nodes = [n.name for n in topology.nodes if n.role != "proxy" and n.name != provider]
    if services_only:
        return [n for n in nodes if _is_service(topology.node(n).role)]
    live = [t for t in LIVE_NODE_TARGETS
            if (t.startswith("redis") and topology.names("redis")) or (t.startswith("zk") and topology.names("zookeeper"))]
    if topology.app and topology.names("rabbitmq"):
        live += [f"rabbitmq-queue-leader:{q}" for q in topology.app.queues]
    return nodes + live


def mode_targets(topology) -> list[str]:
    """Target modes, for the long searches: a minority of each role of three nodes or more (no quorum
    lost), then one of the stack's primaries (Jepsen's `:minority` and `:primaries`)."""
    from faults.roles import check_target

    out = [f"minority:{r}" for r in group_targets(topology) if len(topology.names(r)) >= 3]
    try:
        check_target("one:primaries", "nodes", topology, "generated")
    except HarnessError:
        return out
    return out + ["one:primaries"]


def group_targets(topology, services_only: bool = False) -> list[str]:
    """Roles of several nodes, in topology order (not the proxy, nor the provider's role): the targets
    of faults that act on groups; with `services_only`, the app services' roles alone."""
    provider = topology.app.provider.node if topology.app else None
    skip = {"proxy"} | ({topology.node(provider).role} if provider else set())
    roles = list(dict.fromkeys(n.role for n in topology.nodes if n.role not in skip))
    return [r for r in roles if len(topology.names(r)) >= 2 and (_is_service(r) or not services_only)]


def target_pool(fault, topology, long_faults: bool = False) -> list[str]:
    """What a generated step of `fault` may target, simplest first ([""] for a fault without targets):
    links, or nodes (roles of several nodes for faults that act on groups, app services alone for faults
    that replace containers, target modes too in the long searches)."""
    services = fault.replaces_containers
    nodes = group_targets(topology, services) if fault.acts_on_groups else node_targets(topology, services)
    if long_faults and not (fault.acts_on_groups or services):
        nodes += mode_targets(topology)
    pool = {"links": link_targets(topology),
            "nodes": nodes or node_targets(topology, services)}.get(fault.targets_kind, [""])
    return [t for t in pool if _accepts(fault, t, topology)] if fault.narrow_targets else pool


def _accepts(fault, target: str, topology) -> bool:
    try:
        fault.check_targets([target], {}, topology, "generated")
    except HarnessError:
        return False
    return True


def link_targets(topology) -> list[str]:
    """Single proxy links in topology order, then whole client groups."""
    links = [link.name for link in topology.links]
    groups = list(dict.fromkeys(l.group for l in topology.links))
    return links + groups


def _default_first(values: Iterable[Any], default: Any) -> list[Any]:
    values = list(values)
    return ([default] if default in values else []) + [v for v in values if v != default]


def param_value(param, fits: Callable[[Any], bool] = lambda value: True) -> st.SearchStrategy:
    """A value for one `Param`, shrinking to its default; choices are those `fits` accepts (and, when the
    parameter names some in `search`, only those: the others are for schedules written by hand)."""
    if param.choices:
        pool = param.search if param.search is not None else param.choices
        return st.sampled_from(_default_first([c for c in pool if fits(c)] or [param.default], param.default))
    if param.type is bool and param.default is not None:
        return st.sampled_from([param.default, not param.default])
    if param.search is not None and param.default is not None:  # the range the fault declares, in its unit
        low, high = param.search
        if param.type is int:
            return st.one_of(st.just(param.default), st.integers(int(low), int(high)))
        return st.one_of(st.just(param.default),
                         st.integers(round(low * 10), round(high * 10)).map(lambda x: x / 10))
    return st.just(param.default)  # strings naming things, lists, dicts, unsearched numbers: the default


def fault_params(fault, targets: tuple[str, ...] = (), topology=None) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters for `fault` (choices that the fault accepts for `targets`); those left at their default
    are left out of the step."""
    if not fault.params:
        return st.just({})

    def fits(param):
        def accepts(value) -> bool:
            try:
                checked = fault.check_params({param.name: value}, "generated")
                if topology is not None:
                    fault.check_targets(list(targets), checked, topology, "generated")
            except HarnessError:
                return False
            return True
        return accepts

    return st.fixed_dictionaries({p.name: param_value(p, fits(p)) for p in fault.params}).map(
        lambda values: {k: v for k, v in values.items()
                        if v is not None and v != next(p.default for p in fault.params if p.name == k)})


@st.composite
def steps(draw, topology, faults: Iterable[str] | None = None, max_at: int = MAX_AT_S,
          min_duration: int = MIN_DURATION_S, max_duration: int = MAX_DURATION_S,
          long_faults: bool = False) -> Step:
    from faults.base import get_fault

    # Every step makes the same draws, whatever its fault, so that the shrinker (which prefers fewer
    # choices first) ranks steps by the values drawn: the first fault, target and the defaults.
    name = draw(st.sampled_from([n for n in fault_names(faults, long_faults) if fits(n, topology)]))
    fault = get_fault(name)
    at = draw(st.integers(0, max_at))
    pool = target_pool(fault, topology, long_faults)
    target = pool[draw(st.integers(0, max(len(pool), 2) - 1)) % len(pool)]
    targets = (target,) if target else ()
    params = draw(fault_params(fault, targets, topology)) if draw(st.booleans()) else {}
    duration = draw(st.integers(min_duration, max_duration))
    return Step(at=float(at), fault=name, targets=targets, params=params, duration=float(duration))


def fits(name: str, topology) -> bool:
    """Whether the fault, with its default parameters, can run on this stack (its check_topology): a
    stack with no RabbitMQ, or no queue declared, draws no broker fault that needs them."""
    from faults.base import get_fault

    fault = get_fault(name)
    try:
        fault.check_topology(fault.check_params({}, "generated"), topology, "generated")
    except HarnessError:
        return False
    return True


def schedules(topology, faults: Iterable[str] | None = None, *, max_steps: int = MAX_STEPS,
              max_at: int = MAX_AT_S, min_duration: int = MIN_DURATION_S,
              max_duration: int = MAX_DURATION_S, long_faults: bool = False) -> st.SearchStrategy[Schedule]:
    """Schedules of 1..max_steps steps, each ending within max_at + max_duration seconds.

    Every drawn schedule validates against `topology` (tests/unit/test_generate*.py check it). The one
    filter drops a schedule left empty when every step was a rollback with nothing to roll back (mostly a
    one-step schedule that drew a rollback: one fault in 29); a filter that rejected more kept the shrinker
    from deleting steps.
    """
    fault_names(faults, long_faults)  # a bad name fails here, not inside Hypothesis
    step = steps(topology, faults, max_at, min_duration, max_duration, long_faults)
    return st.lists(step, min_size=1, max_size=max_steps).map(
        lambda drawn: Schedule(steps=aim_followers(tuple(drawn)))).filter(lambda schedule: schedule.steps)


def aim_followers(drawn: tuple[Step, ...]) -> tuple[Step, ...]:
    """Aim each step of a fault that `follows` others (a rollback) at the latest earlier step of those
    faults still in effect (a deploy), so that it acts on what that step did; with none, it is dropped:
    it could only hit nothing (the nightly search drew two such rollbacks in 29 runs, each a step
    that took no effect)."""
    from faults.base import get_fault

    order = sorted(range(len(drawn)), key=lambda i: (drawn[i].at, i))  # the runner's inject order
    aimed: list[Step | None] = list(drawn)
    for pos, i in enumerate(order):
        follows = get_fault(drawn[i].fault).follows
        if not follows:
            continue
        at = drawn[i].at
        earlier = [drawn[j] for j in order[:pos] if drawn[j].fault in follows
                   and (drawn[j].heal_at is None or drawn[j].heal_at > at)]
        if earlier and earlier[-1].targets:
            aimed[i] = replace(drawn[i], targets=earlier[-1].targets)
        else:
            aimed[i] = None
    return tuple(step for step in aimed if step is not None)


def drop_steps(schedule: Schedule, fails: Callable[[Schedule], bool]) -> Schedule:
    """Delete steps one at a time while the schedule still `fails`: the pass after Hypothesis's shrink.

    Hypothesis now and then keeps a redundant simplest step in front of the one that matters (it
    shrinks each step towards the simplest, and two equal simplest steps can block each other's
    deletion). A user wants the shortest schedule that reproduces; this costs at most one run per step.
    """
    kept = list(schedule.steps)
    index = 0
    while len(kept) > 1 and index < len(kept):
        candidate = replace(schedule, steps=tuple(kept[:index] + kept[index + 1:]))
        if fails(candidate):
            kept = list(candidate.steps)
        else:
            index += 1
    return schedule if len(kept) == len(schedule.steps) else replace(schedule, steps=tuple(kept))
