"""Hypothesis strategies for fault schedules, drawn from the fault registry and a topology's targets.

`schedules(topology)` generates `Schedule` values (the same values a schedule file holds), ordered so
that Hypothesis shrinks towards the simplest one: one step, the mildest fault, at 0 s, for the shortest
time, on the first target, with its default parameters.

Left out of the generic search (`EXCLUDED`):
- `deploy`, `rolling-deploy`, `rollback`: their switches would be the bug itself, not a fault;
- `rolling-restart`: restarts every target one after another with gaps: longer than a short run;
- `partition`: its groupings need node/groups parameters that fit the targets, and a RabbitMQ or
  ZooKeeper partition heals slower than a short run drains (pass `faults=` to search it anyway).
Node targets are single nodes and live roles, never a whole quorum role, the proxy or the sink (the
sink records deliveries, the proxy carries every link): a run of a few seconds must be able to heal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.schedule import Schedule, Step

EXCLUDED = frozenset({"deploy", "rolling-deploy", "rollback", "rolling-restart", "partition"})

# Simplest first, by blast radius: the outside provider, then one link's traffic, then a node, then a
# cluster's leader. Faults not named here (new ones) come last, by name.
FAULT_ORDER = ("provider-outage", "latency", "slicer", "bandwidth", "slow-close", "limit-data", "timeout",
               "reset-peer", "link-down", "pause", "restart", "kill", "redis-failover",
               "rabbitmq-leader-stop", "zk-leader-kill")

MAX_STEPS = 3
MAX_AT_S = 8
MIN_DURATION_S = 2
MAX_DURATION_S = 8

# Live roles a node fault may name; quorum-queue leaders of the queues the app declares (x-chaos.queues).
LIVE_NODE_TARGETS = ("redis-primary", "redis-replica", "zk-leader")


def fault_names(faults: Iterable[str] | None = None) -> list[str]:
    """The searched faults, simplest first (the registry minus `EXCLUDED` unless named)."""
    from faults.base import load_all

    registry = load_all()
    names = [n for n in registry if n not in EXCLUDED] if faults is None else list(faults)
    for name in names:
        if name not in registry:
            raise HarnessError(f"unknown fault {name!r} (known: {', '.join(sorted(registry))})")
    rank = {n: i for i, n in enumerate(FAULT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def node_targets(topology) -> list[str]:
    """Single nodes in topology order (not the proxy, nor the provider: it is the ground truth), then
    live roles."""
    provider = topology.app.provider.node if topology.app else None
    nodes = [n.name for n in topology.nodes if n.role != "proxy" and n.name != provider]
    live = [t for t in LIVE_NODE_TARGETS
            if (t.startswith("redis") and topology.names("redis")) or (t.startswith("zk") and topology.names("zookeeper"))]
    if topology.app and topology.names("rabbitmq"):
        live += [f"rabbitmq-queue-leader:{q}" for q in topology.app.queues]
    return nodes + live


def link_targets(topology) -> list[str]:
    """Single proxy links in topology order, then whole client groups."""
    links = [link.name for link in topology.links]
    groups = list(dict.fromkeys(l.group for l in topology.links))
    return links + groups


def _default_first(values: Iterable[Any], default: Any) -> list[Any]:
    values = list(values)
    return ([default] if default in values else []) + [v for v in values if v != default]


def param_value(param) -> st.SearchStrategy:
    """A value for one `Param`, shrinking to its default."""
    if param.choices:
        return st.sampled_from(_default_first(param.choices, param.default))
    if param.type is bool and param.default is not None:
        return st.sampled_from([param.default, not param.default])
    if param.search is not None and param.default is not None:  # the range the fault declares, in its unit
        low, high = param.search
        if param.type is int:
            return st.one_of(st.just(param.default), st.integers(int(low), int(high)))
        return st.one_of(st.just(param.default),
                         st.integers(round(low * 10), round(high * 10)).map(lambda x: x / 10))
    return st.just(param.default)  # strings naming things, lists, dicts, unsearched numbers: the default


def fault_params(fault) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters for `fault`; those left at their default are left out of the step."""
    if not fault.params:
        return st.just({})
    return st.fixed_dictionaries({p.name: param_value(p) for p in fault.params}).map(
        lambda values: {k: v for k, v in values.items()
                        if v is not None and v != next(p.default for p in fault.params if p.name == k)})


@st.composite
def steps(draw, topology, faults: Iterable[str] | None = None, max_at: int = MAX_AT_S,
          min_duration: int = MIN_DURATION_S, max_duration: int = MAX_DURATION_S) -> Step:
    from faults.base import get_fault

    # Every step makes the same draws, whatever its fault, so that the shrinker (which prefers fewer
    # choices first) ranks steps by the values drawn: the first fault, target and the defaults.
    name = draw(st.sampled_from(fault_names(faults)))
    fault = get_fault(name)
    at = draw(st.integers(0, max_at))
    pool = {"links": link_targets(topology), "nodes": node_targets(topology)}.get(fault.targets_kind, [""])
    target = pool[draw(st.integers(0, max(len(pool), 2) - 1)) % len(pool)]
    targets = (target,) if target else ()
    params = draw(fault_params(fault)) if draw(st.booleans()) else {}
    duration = draw(st.integers(min_duration, max_duration))
    return Step(at=float(at), fault=name, targets=targets, params=params, duration=float(duration))


def schedules(topology, faults: Iterable[str] | None = None, *, max_steps: int = MAX_STEPS,
              max_at: int = MAX_AT_S, min_duration: int = MIN_DURATION_S,
              max_duration: int = MAX_DURATION_S) -> st.SearchStrategy[Schedule]:
    """Schedules of 1..max_steps steps, each ending within max_at + max_duration seconds.

    Every drawn schedule validates against `topology` (tests/unit/test_generate.py checks it): there is
    no filter, since a filter around the list kept the shrinker from deleting steps.
    """
    fault_names(faults)  # a bad name fails here, not inside Hypothesis
    step = steps(topology, faults, max_at, min_duration, max_duration)
    return st.lists(step, min_size=1, max_size=max_steps).map(lambda drawn: Schedule(steps=tuple(drawn)))


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
