"""Targets by role, resolved at run time: "redis-primary" is whichever node Sentinel names *now*.

A target is one of:
- a node name: `rmq2`, `redis1`, `worker1`;
- a role (or its plural): `rabbitmq`, `zookeeper`/`zk`, `redis`, `sentinel(s)`, `proxy`, `worker(s)`, `api`, ...;
- a live role: `redis-primary`, `redis-replica`, `zk-leader`, `zk-followers`,
  `rabbitmq-queue-leader:<queue>`, `rabbitmq-queue-followers:<queue>`;
- `primaries`: every live primary the stack has: the Redis primary, the ZooKeeper leader, and the leaders
  of the quorum queues the stack file declares (`x-chaos.queues`), as Jepsen's `:primaries`;
- a target mode before any of these: `one:`, `minority:`, `majority:`, `all:`, `percent:N:` (`faults.modes`),
  picked with the run's seed; `any:` is `one:`'s older spelling.
For link faults a target is also a link name (`workers-redis1`), a client group (`workers`, `api`), a glob
over link names (`*-redis1`), or `<group>:<node target>` (`workers:redis-primary`); a bare node target
means every group's links to those nodes.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from typing import TYPE_CHECKING

from faults import modes
from harness.errors import HarnessError
from stack import health
from stack.topology import ProxyLink, Topology

if TYPE_CHECKING:
    from stack.stack import Stack

# Names of the built-in kinds' roles. Every other role, service and client group comes from the stack
# file: a target may name a role of the topology (every node of it, `worker` or `workers`), a node, or
# a client group of its proxy links.
KIND_ALIASES = {
    "rabbitmq": "rabbitmq", "rmq": "rabbitmq", "rabbit": "rabbitmq",
    "zookeeper": "zookeeper", "zk": "zookeeper",
    "redis": "redis",
    "sentinel": "sentinel", "sentinels": "sentinel",
    "proxy": "proxy",
}
LIVE_ROLES = ("redis-primary", "redis-replica", "zk-leader", "zk-followers", "primaries")
LIVE_QUEUE_ROLES = ("rabbitmq-queue-leader", "rabbitmq-queue-followers")


@functools.lru_cache(maxsize=1)
def _default_topology() -> Topology:
    """What a schedule is checked against when no topology is given: the shipped default stack."""
    from stack.topology import RunParams, build_topology

    return build_topology("default", RunParams(run_id="check", cookie="x"))


def _role(target: str, topology: Topology) -> str | None:
    """The role a target names (a kind alias, a role of the topology, or its plural), else None."""
    if target in KIND_ALIASES:
        return KIND_ALIASES[target]
    roles = {n.role for n in topology.nodes}
    if target in roles:
        return target
    if target.endswith("s") and target[:-1] in roles:
        return target[:-1]
    return None


def _groups(topology: Topology) -> set[str]:
    return {l.group for l in topology.links}


# ---------------------------------------------------------------------------------------------- static checks

def check_target(target: str, kind: str, topology: Topology | None, where: str) -> None:
    """Raise HarnessError (one line) unless `target` could name something of `kind` in `topology`; a target
    mode (or `primaries`) must also pick at least one node or link there."""
    if not isinstance(target, str) or not target:
        raise HarnessError(f"{where}: a target must be a non-empty string, not {target!r}")
    topology = topology or _default_topology()
    inner = target
    while (split := modes.split(inner, where)) is not None:  # a bad percent is refused here
        inner = split[1]
    if not _is_target(target, kind, topology):
        from faults.base import _did_you_mean

        head, sep, rest = target.partition(":")
        if sep and _is_target(rest, kind, topology):
            raise HarnessError(f"{where}: target {target!r}: unknown target mode {head!r}"
                               f"{_did_you_mean(head, modes.MODES)} (known: one, minority, majority, all, "
                               f"percent:N)")
        known = sorted(set(KIND_ALIASES) | {n.role for n in topology.nodes} | set(LIVE_ROLES)
                       | {n.name for n in topology.nodes} | (_groups(topology) if kind == "links" else set()))
        raise HarnessError(f"{where}: unknown target {target!r}{_did_you_mean(target, known)}")
    if inner != target or "primaries" in target.split(":"):
        low, high = _link_range(target, topology) if kind == "links" else _node_range(target, topology)
        if high == 0:
            what = "link" if kind == "links" else "node"
            split = modes.split(target)
            if split is None:
                why = f"it resolves to no {what}"
            else:
                n = (_link_range if kind == "links" else _node_range)(split[1], topology)[1]
                why = f"{split[0].label} of {n} {what}{'' if n == 1 else 's'} is none"
            raise HarnessError(f"{where}: target {target!r} picks no {what} in topology {topology.name!r}: {why}")


def _is_target(target: str, kind: str, topology: Topology) -> bool:
    return (kind == "links" and _is_link_target(target, topology)) or _is_node_target(target, topology)


# How many nodes (links) a target can resolve to, as (fewest, most): live roles are known only at run time.
def _node_range(target: str, topo: Topology) -> tuple[int, int]:
    split = modes.split(target)
    if split is not None:
        low, high = _node_range(split[1], topo)
        return split[0].count(low), split[0].count(high)
    possible, exact = _possible_nodes(target, topo)
    if exact:
        return len(possible), len(possible)
    r, z, q = (len(topo.names(k)) for k in ("redis", "zookeeper", "rabbitmq"))
    queues = len(topo.app.queues) if topo.app else 0
    sizes = {"redis-primary": min(1, r), "redis-replica": max(0, r - 1), "zk-leader": min(1, z),
             "zk-followers": max(0, z - 1), "rabbitmq-queue-leader": min(1, q),
             "rabbitmq-queue-followers": max(0, q - 1)}
    if target == "primaries":
        return (min(1, r) + min(1, z) + min(1, q, queues), min(1, r) + min(1, z) + min(q, queues))
    n = sizes.get(target, sizes.get(target.partition(":")[0], 0))
    return n, n


def _possible_nodes(target: str, topo: Topology) -> tuple[set[str], bool]:
    """The nodes a node target may resolve to, and whether exactly those (False: live roles, modes)."""
    split = modes.split(target)
    if split is not None:
        possible, exact = _possible_nodes(split[1], topo)
        return possible, exact and split[0].name == "all"
    live = {"redis-primary": ["redis"], "redis-replica": ["redis"], "zk-leader": ["zookeeper"],
            "zk-followers": ["zookeeper"], "rabbitmq-queue-leader": ["rabbitmq"],
            "rabbitmq-queue-followers": ["rabbitmq"],
            "primaries": ["redis", "zookeeper"] + (["rabbitmq"] if topo.app and topo.app.queues else [])}
    queue_role = target.partition(":")[0]
    kinds = live.get(target) or (live[queue_role] if queue_role in LIVE_QUEUE_ROLES else None)
    if kinds:
        return {n for k in kinds for n in topo.names(k)}, False
    role = _role(target, topo)
    if role is not None:
        return set(topo.names(role)), True
    return ({target} if target in {n.name for n in topo.nodes} else set()), True


def possible_nodes(targets: list[str], topology: Topology) -> tuple[set[str], bool]:
    """The nodes node targets may resolve to in `topology`, and whether exactly those (no live role, no
    pick): what a fault's `check_targets` can judge before anything runs."""
    found, exact = set(), True
    for target in targets:
        nodes, certain = _possible_nodes(target, topology)
        found |= nodes
        exact = exact and certain
    return found, exact


def _link_range(target: str, topo: Topology) -> tuple[int, int]:
    split = modes.split(target)
    if split is not None:
        low, high = _link_range(split[1], topo)
        return split[0].count(low), split[0].count(high)
    links = list(topo.links)
    if target in {l.name for l in links}:
        return 1, 1
    if target in _groups(topo):
        n = sum(1 for l in links if l.group == target)
        return n, n
    if any(ch in target for ch in "*?["):
        n = sum(1 for l in links if fnmatch.fnmatchcase(l.name, target))
        return n, n
    group, sep, rest = target.partition(":")
    if sep and group in _groups(topo):
        links, target = [l for l in links if l.group == group], rest
    possible, exact = _possible_nodes(target, topo)
    n = sum(1 for l in links if l.node in possible)
    return (n if exact else 0), n


def _is_node_target(target: str, topology: Topology | None) -> bool:
    topology = topology or _default_topology()
    if (split := modes.split(target)) is not None:
        return _is_node_target(split[1], topology)
    if _role(target, topology) or target in LIVE_ROLES:
        return True
    role, _, queue = target.partition(":")
    if role in LIVE_QUEUE_ROLES:
        return bool(queue)
    return target in {n.name for n in topology.nodes}


def _is_link_target(target: str, topology: Topology | None) -> bool:
    topology = topology or _default_topology()
    if (split := modes.split(target)) is not None:
        return _is_link_target(split[1], topology) or _is_node_target(split[1], topology)
    groups = _groups(topology)
    if target in groups:
        return True
    group, sep, rest = target.partition(":")
    if sep and group in groups:
        return _is_node_target(rest, topology)
    if any(ch in target for ch in "*?["):
        return True
    return target in {l.name for l in topology.links}


# ---------------------------------------------------------------------------------------------- live roles

def redis_primary(stack: "Stack") -> str:
    from stack.kinds.redis import primary

    return primary(stack)


def zk_leader(stack: "Stack") -> str:
    for node in stack.topology.names("zookeeper"):
        try:
            if health.zk_mode(stack, node) in ("leader", "standalone"):
                return node
        except Exception:
            continue
    raise HarnessError("no ZooKeeper leader found: no node answers srvr with Mode: leader")


def app_queue(fault: str, params, topology, where: str) -> str:
    """A queue fault's queue: its `queue` parameter, else the first of the stack file's x-chaos.queues."""
    queue = params.get("queue") or next(iter(topology.app.queues if topology.app else ()), None)
    if not queue:
        raise HarnessError(f"{where}: {fault} needs params.queue: the {topology.name} stack file declares "
                           "no x-chaos.queues")
    return queue


def rabbitmq_queue_leader(stack: "Stack", queue: str, avoid: tuple[str, ...] = ()) -> str:
    """The node leading quorum queue `queue`, as `rabbitmqctl list_queues name leader` says on a live node."""
    last = "no RabbitMQ node answered"
    for node in stack.topology.names("rabbitmq"):
        if node in avoid:
            continue
        try:
            code, out = stack.exec(node, ["rabbitmqctl", "-q", "list_queues", "name", "leader",
                                          "--formatter", "json"], user="rabbitmq", timeout=20)
        except Exception as exc:
            last = f"{node}: {exc}"
            continue
        if code != 0 or "[" not in out:
            last = f"{node}: {out.strip().splitlines()[-1] if out.strip() else f'exit {code}'}"
            continue
        for row in json.loads(out[out.index("["):]):
            if row.get("name") == queue:
                leader = str(row.get("leader", ""))
                if leader.startswith("rabbit@"):
                    return leader.split("@", 1)[1]
                last = f"{node}: queue {queue} has no leader ({leader!r})"
                break
        else:
            raise HarnessError(f"RabbitMQ has no queue {queue!r} (asked {node})")
    raise HarnessError(f"no leader found for quorum queue {queue!r} (last: {last})")


# ---------------------------------------------------------------------------------------------- resolution

def resolve_nodes(stack: "Stack", targets: list[str], seed: object = 0,
                  picks: list[modes.Pick] | None = None) -> list[str]:
    """Node names, in topology order, for the given targets (live roles are asked now); what each target
    mode picked (and what `primaries` resolved to) is appended to `picks`."""
    topo = stack.topology
    names = [n.name for n in topo.nodes]
    found: set[str] = set()
    for target in targets:
        found.update(_resolve_one(stack, target, seed, picks))
    return [n for n in names if n in found]


def primaries(stack: "Stack") -> list[str]:
    """The Redis primary, the ZooKeeper leader and each declared quorum queue's leader, as present."""
    topo = stack.topology
    found = []
    if topo.names("redis"):
        found.append(redis_primary(stack))
    if topo.names("zookeeper"):
        found.append(zk_leader(stack))
    if topo.names("rabbitmq") and topo.app:
        found += [rabbitmq_queue_leader(stack, queue) for queue in topo.app.queues]
    return found


def _resolve_one(stack: "Stack", target: str, seed: object, picks: list[modes.Pick] | None) -> list[str]:
    topo = stack.topology
    if (split := modes.split(target)) is not None:
        mode, inner = split
        pool = resolve_nodes(stack, [inner], seed, picks)
        picked = mode.pick(pool, seed, target) if pool else []
        if picks is not None:
            picks.append(modes.Pick(target, tuple(pool), tuple(picked)))
        return picked
    if target in LIVE_ROLES or target.partition(":")[0] in LIVE_QUEUE_ROLES:
        pass
    elif (role := _role(target, topo)) is not None:
        return topo.names(role)
    if target == "primaries":
        found = resolve_nodes(stack, primaries(stack))
        if picks is not None:
            picks.append(modes.Pick(target, tuple(found), tuple(found)))
        return found
    if target == "redis-primary":
        return [redis_primary(stack)]
    if target == "redis-replica":
        primary = redis_primary(stack)
        return [n for n in topo.names("redis") if n != primary]
    if target == "zk-leader":
        return [zk_leader(stack)]
    if target == "zk-followers":
        leader = zk_leader(stack)
        return [n for n in topo.names("zookeeper") if n != leader]
    role, _, queue = target.partition(":")
    if role in LIVE_QUEUE_ROLES and queue:
        leader = rabbitmq_queue_leader(stack, queue)
        if role == "rabbitmq-queue-leader":
            return [leader]
        return [n for n in topo.names("rabbitmq") if n != leader]
    if target in [n.name for n in topo.nodes]:
        return [target]
    raise HarnessError(f"unknown target {target!r} in topology {topo.name!r}")


def resolve_links(stack: "Stack", targets: list[str], seed: object = 0,
                  picks: list[modes.Pick] | None = None) -> list[ProxyLink]:
    """Proxy links, in topology order, for the given link targets (a mode's pick goes to `picks`)."""
    links = list(stack.topology.links)
    groups = _groups(stack.topology)
    picked: set[str] = set()
    for target in targets:
        if (split := modes.split(target)) is not None:
            mode, inner = split
            pool = [l.name for l in resolve_links(stack, [inner], seed, picks)]
            chosen = mode.pick(pool, seed, target) if pool else []
            if picks is not None:
                picks.append(modes.Pick(target, tuple(pool), tuple(chosen)))
            picked.update(chosen)
        elif target in {l.name for l in links}:
            picked.add(target)
        elif target in groups:
            picked.update(l.name for l in links if l.group == target)
        elif any(ch in target for ch in "*?["):
            picked.update(l.name for l in links if fnmatch.fnmatchcase(l.name, target))
        elif ":" in target and target.split(":", 1)[0] in groups:
            group, rest = target.split(":", 1)
            nodes = set(resolve_nodes(stack, [rest], seed, picks))
            picked.update(l.name for l in links if l.group == group and l.node in nodes)
        else:
            nodes = set(resolve_nodes(stack, [target], seed, picks))
            picked.update(l.name for l in links if l.node in nodes)
    return [l for l in links if l.name in picked]


def role_of(stack: "Stack", node: str) -> str:
    try:
        return stack.topology.node(node).role
    except KeyError:
        return "unknown"
