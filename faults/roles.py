"""Targets by role, resolved at run time: "redis-primary" is whichever node Sentinel names *now*.

A target is one of:
- a node name: `rmq2`, `redis1`, `worker1`;
- a role (or its plural): `rabbitmq`, `zookeeper`/`zk`, `redis`, `sentinel(s)`, `proxy`, `worker(s)`, `api`, ...;
- a live role: `redis-primary`, `redis-replica`, `zk-leader`, `zk-followers`,
  `rabbitmq-queue-leader:<queue>`, `rabbitmq-queue-followers:<queue>`;
- `any:<target>`: one node of that target, picked with the run's seed (Jepsen's "one random node").
For link faults a target is also a link name (`workers-redis1`), a client group (`workers`, `api`), a glob
over link names (`*-redis1`), or `<group>:<node target>` (`workers:redis-primary`); a bare node target
means every group's links to those nodes.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import random
from typing import TYPE_CHECKING

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
LIVE_ROLES = ("redis-primary", "redis-replica", "zk-leader", "zk-followers")
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
    """Raise HarnessError (one line) unless `target` could name something of `kind` in `topology`."""
    if not isinstance(target, str) or not target:
        raise HarnessError(f"{where}: a target must be a non-empty string, not {target!r}")
    if kind == "links" and _is_link_target(target, topology):
        return
    if _is_node_target(target, topology):
        return
    from faults.base import _did_you_mean

    topology = topology or _default_topology()
    known = sorted(set(KIND_ALIASES) | {n.role for n in topology.nodes} | set(LIVE_ROLES)
                   | {n.name for n in topology.nodes} | (_groups(topology) if kind == "links" else set()))
    raise HarnessError(f"{where}: unknown target {target!r}{_did_you_mean(target, known)}")


def _is_node_target(target: str, topology: Topology | None) -> bool:
    topology = topology or _default_topology()
    if target.startswith("any:"):
        return _is_node_target(target[4:], topology)
    if _role(target, topology) or target in LIVE_ROLES:
        return True
    role, _, queue = target.partition(":")
    if role in LIVE_QUEUE_ROLES:
        return bool(queue)
    return target in {n.name for n in topology.nodes}


def _is_link_target(target: str, topology: Topology | None) -> bool:
    topology = topology or _default_topology()
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

def resolve_nodes(stack: "Stack", targets: list[str], seed: int = 0) -> list[str]:
    """Node names, in topology order, for the given targets (live roles are asked now)."""
    topo = stack.topology
    names = [n.name for n in topo.nodes]
    found: set[str] = set()
    for target in targets:
        found.update(_resolve_one(stack, target, seed))
    return [n for n in names if n in found]


def _resolve_one(stack: "Stack", target: str, seed: int) -> list[str]:
    topo = stack.topology
    if target.startswith("any:"):
        pool = resolve_nodes(stack, [target[4:]], seed)
        return [random.Random(f"{seed}:{target}").choice(pool)] if pool else []
    if target in LIVE_ROLES or target.partition(":")[0] in LIVE_QUEUE_ROLES:
        pass
    elif (role := _role(target, topo)) is not None:
        return topo.names(role)
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


def resolve_links(stack: "Stack", targets: list[str], seed: int = 0) -> list[ProxyLink]:
    """Proxy links, in topology order, for the given link targets."""
    links = list(stack.topology.links)
    groups = _groups(stack.topology)
    picked: set[str] = set()
    for target in targets:
        if target in {l.name for l in links}:
            picked.add(target)
        elif target in groups:
            picked.update(l.name for l in links if l.group == target)
        elif any(ch in target for ch in "*?["):
            picked.update(l.name for l in links if fnmatch.fnmatchcase(l.name, target))
        elif ":" in target and target.split(":", 1)[0] in groups:
            group, rest = target.split(":", 1)
            nodes = set(resolve_nodes(stack, [rest], seed))
            picked.update(l.name for l in links if l.group == group and l.node in nodes)
        else:
            nodes = set(resolve_nodes(stack, [target], seed))
            picked.update(l.name for l in links if l.node in nodes)
    return [l for l in links if l.name in picked]


def role_of(stack: "Stack", node: str) -> str:
    try:
        return stack.topology.node(node).role
    except KeyError:
        return "unknown"
