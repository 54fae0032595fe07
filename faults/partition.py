"""`partition`: cut the network between nodes of the stack (Jepsen's groupings), with iptables DROP rules.

The rules go into each affected node's own network namespace, applied from a *helper* container that
joins it (`--network container:<node>`, `--cap-add NET_ADMIN`): the services themselves need no
NET_ADMIN. One helper per node and step lives as long as the partition does and is labelled with the
process that made it, so `faults.sweep` can undo the rules of a runner that died. Each step's rules sit
in their own chain `CHAOS-P<step>`, jumped to from INPUT and OUTPUT; heal deletes the chain and the
helper, then checks that every pair of nodes reaches each other again, except the pairs that another
partition in effect still cuts (its own heal checks those).

Only nodes named by the targets take part: the proxy is outside the partition unless a target names
it, so client traffic through the proxy still flows (fault it with link faults). Cluster traffic
(Erlang distribution, ZooKeeper quorum, Redis replication, Sentinel gossip) never goes through the
proxy, so a partition between cluster nodes is complete for them.

If iptables works in neither backend (nf_tables, legacy) on this kernel, a grouping that isolates
whole nodes falls back to `docker network disconnect` of those nodes (which also cuts them from the
proxy and the host); other groupings then raise HarnessError.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from faults import journal
from faults.base import Effect, FaultContext, NoTarget, Param, register
from faults.nodes import NodeFault, namespace_gone, started_at, status
from faults.roles import resolve_nodes
from harness.errors import HarnessError
from stack import health

if TYPE_CHECKING:
    from stack.stack import Stack

GROUPINGS = ("isolate", "halves", "majority-minority", "bridge", "majorities-ring", "groups")
HELPER_FAULT_LABEL = "chaos-harness.fault"
HELPER_TARGET_LABEL = "chaos-harness.target"
HELPER_CHAIN_LABEL = "chaos-harness.chain"
HELPER_UNDO_LABEL = "chaos-harness.undo"  # a shell script that undoes what the helper did (default: the chain)

# Picks a working iptables backend, or exits 3 if there is none.
_PICK_IPT = ("IPT=; for c in iptables iptables-legacy; do if $c -S >/dev/null 2>&1; then IPT=$c; break; fi; done; "
             "[ -n \"$IPT\" ] || { echo 'no working iptables backend'; exit 3; }; ")

# Reach each address on a closed port: "refused" means packets flow, "timeout" means they are dropped.
_REACH = r"""
import json, socket, sys
out = {}
for ip in sys.argv[1:]:
    s = socket.socket(); s.settimeout(float(%r))
    try:
        s.connect((ip, 9)); out[ip] = "open"
    except ConnectionRefusedError: out[ip] = "refused"
    except (socket.timeout, TimeoutError): out[ip] = "timeout"
    except OSError as e: out[ip] = "error:%%s" %% e.errno
    finally: s.close()
print(json.dumps(out))
"""


def grudge(nodes: list[str], grouping: str, focus: list[str], groups: list[list[str]], rng: random.Random
           ) -> dict[str, set[str]]:
    """Jepsen's grudge: for each node, the nodes it must not exchange packets with."""
    n = len(nodes)
    if n < 2:
        raise NoTarget(f"a partition needs at least 2 nodes, got {nodes}")
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if grouping == "isolate":
        one = focus[:1] or shuffled[:1]
        components = [one, [x for x in nodes if x not in one]]
    elif grouping in ("halves", "majority-minority"):
        small = [x for x in focus if x in nodes][: (n - 1) // 2 if grouping == "majority-minority" else n // 2]
        rest = [x for x in shuffled if x not in small]
        want = (n - 1) // 2 if grouping == "majority-minority" else n // 2
        small += rest[: max(0, want - len(small))]
        components = [small, [x for x in nodes if x not in small]]
    elif grouping == "bridge":
        if n < 3:
            raise HarnessError(f"bridge needs at least 3 nodes, got {nodes}")
        middle = focus[0] if focus else shuffled[n // 2]
        others = [x for x in shuffled if x != middle]
        left, right = others[: len(others) // 2], others[len(others) // 2:]
        cut = {x: set(right) for x in left} | {x: set(left) for x in right}
        cut[middle] = set()
        return cut
    elif grouping == "majorities-ring":
        if n < 5:
            raise HarnessError(f"majorities-ring needs at least 5 nodes (each must see a different majority), "
                               f"got {len(nodes)}")
        reach = (n // 2 + 1) // 2  # each node sees itself and `reach` neighbours on each side: a majority
        ring = shuffled
        cut = {}
        for i, x in enumerate(ring):
            seen = {ring[(i + d) % n] for d in range(-reach, reach + 1)}
            cut[x] = set(nodes) - seen
        return cut
    elif grouping == "groups":
        named = [x for g in groups for x in g]
        components = [list(g) for g in groups] + ([[x for x in nodes if x not in named]]
                                                   if set(nodes) - set(named) else [])
    else:
        raise HarnessError(f"unknown grouping {grouping!r}: choose one of {', '.join(GROUPINGS)}")
    component_of = {x: i for i, comp in enumerate(components) for x in comp}
    return {x: {y for y in nodes if component_of.get(y) != component_of.get(x)} for x in nodes}


# The cuts of the partitions in effect in this process, by run: a heal must not wait for a pair that
# another step's partition, overlapping it in time, still cuts (that pair connects when that one heals).
_IN_EFFECT: dict[str, dict[int, set[frozenset[str]]]] = {}
_IN_EFFECT_LOCK = threading.Lock()


def hold_cut(run_id: str, key: int, cut: dict[str, set[str]]) -> None:
    with _IN_EFFECT_LOCK:
        _IN_EFFECT.setdefault(run_id, {})[key] = {frozenset((x, y)) for x, ys in cut.items() for y in ys}


def release_cut(run_id: str, key: int) -> None:
    with _IN_EFFECT_LOCK:
        cuts = _IN_EFFECT.get(run_id, {})
        cuts.pop(key, None)
        if not cuts:
            _IN_EFFECT.pop(run_id, None)


def cut_by_others(run_id: str, key: int) -> set[frozenset[str]]:
    """The node pairs that a partition other than `key` still cuts in run `run_id`."""
    with _IN_EFFECT_LOCK:
        return set().union(*(pairs for other, pairs in _IN_EFFECT.get(run_id, {}).items() if other != key))


def node_ip(stack: "Stack", node: str) -> str:
    container = stack.container(node)
    container.reload()
    net = (container.attrs["NetworkSettings"].get("Networks") or {}).get(stack.network_name) or {}
    ip = net.get("IPAddress")
    if not ip:
        raise HarnessError(f"{node}: has no address on network {stack.network_name}")
    return ip


def reach(helper, node: str, ips: list[str], timeout: float = 1.0) -> dict[str, str]:
    """From `node`'s network namespace, which of `ips` answer (refused/open) and which are silent
    (timeout). The probe runs in `helper` (a container that joined that namespace, with the harness's
    base image), not in the node: the node's image need not have python3 (an official image has not)."""
    result = helper.exec_run(["python3", "-c", _REACH % timeout, *ips])
    out = result.output.decode(errors="replace")
    if result.exit_code != 0 or "{" not in out:
        raise RuntimeError(f"{node}: reachability probe failed: {out.strip()[-200:] or f'exit {result.exit_code}'}")
    return json.loads(out[out.index("{"):])


def base_image(stack: "Stack") -> str:
    if stack.images.get("base"):
        return stack.images["base"]
    from stack.images import ensure_images

    stack.images = ensure_images(stack.client, stack.progress)
    return stack.images["base"]


def start_helper(ctx: FaultContext, node: str, chain: str, fault: str = "partition", undo: str | None = None):
    """A NET_ADMIN container in `node`'s network namespace, kept until the fault heals; its iptables
    chain (or, with `undo`, the script that undoes its changes) is in a label, so that `remove_helper`
    (and a sweep) can undo them."""
    stack = ctx.stack
    target = stack.container(node)
    labels = ctx.helper_labels()
    labels.update({HELPER_FAULT_LABEL: fault, HELPER_TARGET_LABEL: node, HELPER_CHAIN_LABEL: chain})
    if undo:
        labels[HELPER_UNDO_LABEL] = undo
    return stack.client.containers.run(
        base_image(stack), ["sleep", "infinity"], detach=True, cap_add=["NET_ADMIN"],
        network_mode=f"container:{target.id}", labels=labels,
        name=f"chaos-{stack.run_id}-{node}-{chain.lower()}-{secrets.token_hex(2)}")


def helper_exec(helper, script: str) -> tuple[int, str]:
    result = helper.exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode(errors="replace")


def unblock_script(chain: str) -> str:
    return (_PICK_IPT + f"$IPT -D INPUT -j {chain} 2>/dev/null; $IPT -D OUTPUT -j {chain} 2>/dev/null; "
            f"$IPT -F {chain} 2>/dev/null; $IPT -X {chain} 2>/dev/null; "
            f"if $IPT -S {chain} >/dev/null 2>&1; then echo 'chain {chain} still there'; exit 1; fi; exit 0")


def undo_rules(helper) -> str:
    """Run the helper's undo script (by default: delete its chain) and keep the helper; '' or what went
    wrong. A helper that is gone or stopped has nothing left to undo."""
    import docker.errors

    try:
        helper.reload()
        if helper.status != "running":
            return ""
        script = helper.labels.get(HELPER_UNDO_LABEL) or unblock_script(helper.labels.get(HELPER_CHAIN_LABEL, ""))
        code, out = helper_exec(helper, script)
    except docker.errors.NotFound:
        return ""
    return "" if code == 0 else (out.strip()[-200:] or f"exit {code}")


def remove_helper(helper) -> str:
    """Delete the helper's chain (if its namespace still lives) and the helper; '' or what went wrong."""
    import docker.errors

    problem = undo_rules(helper)
    try:
        helper.remove(force=True)
    except docker.errors.NotFound:
        pass
    return problem


@register
class Partition(NodeFault):
    name = "partition"
    summary = ("cut the network between the target nodes (iptables DROP in each node's namespace, "
               "from a NET_ADMIN helper); heal removes the rules and checks every pair connects")
    params = (
        Param("grouping", str, "isolate", choices=GROUPINGS, help="how the target nodes are split"),
        Param("node", str, None, help="isolate/majority-minority/bridge: the node (a target, e.g. zk-leader) "
                                      "to isolate, put in the minority, or make the bridge; default: seeded pick"),
        Param("groups", list, None, help="grouping groups: lists of targets, one per side (the rest form one more)"),
    )

    short = False  # a RabbitMQ or ZooKeeper partition heals slower than a short run drains
    acts_on_groups = True

    @classmethod
    def check_targets(cls, targets, params, topology, where):
        """A grouping the targets' nodes are too few for is refused now, not part-way through a run."""
        from faults.roles import possible_nodes

        nodes, exact = possible_nodes(targets, topology)
        if not exact:
            return
        need = {"bridge": 3, "majorities-ring": 5, "majority-minority": 3}.get(params["grouping"], 2)
        if len(nodes) < need:
            raise HarnessError(f"{where}: grouping {params['grouping']!r} needs at least {need} target nodes, "
                               f"the targets {list(targets)} have {len(nodes)}")

    @classmethod
    def check_combination(cls, params, where):
        if params["grouping"] == "groups" and not params["groups"]:
            raise HarnessError(f"{where}: grouping 'groups' needs parameter 'groups' (lists of targets)")
        if params["groups"] is not None and not all(isinstance(g, (list, str)) for g in params["groups"]):
            raise HarnessError(f"{where}: parameter 'groups' must be a list of lists of targets")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chain = f"CHAOS-P{str(self.ctx.step)[:20]}".replace(" ", "")
        self.helpers: dict[str, object] = {}
        self.disconnected: list[str] = []
        self.nodes: list[str] = []
        self.cut: dict[str, set[str]] = {}
        self.started_at: dict[str, str] = {}  # each blocked node's container start when its rules went in
        self.undo: dict = {}  # node -> the undo record of its disconnect (the fallback), until reconnected

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        seed = f"{stack.seed}:{self.ctx.step}"
        focus = resolve_nodes(stack, [self.p["node"]], seed=seed) if self.p["node"] else []
        groups = [resolve_nodes(stack, g if isinstance(g, list) else [g], seed=seed) for g in self.p["groups"] or []]
        cut = grudge(nodes, self.p["grouping"], focus, groups, random.Random(seed))
        cut = {x: ys for x, ys in cut.items() if ys}
        if not cut:
            raise NoTarget(f"grouping {self.p['grouping']} of {nodes} cuts nothing")
        self.nodes, self.cut = nodes, cut
        hold_cut(stack.run_id, id(self), cut)  # before any rule: a heal of another step now skips these pairs
        ips = {x: node_ip(stack, x) for x in nodes}
        states = {x: status(stack, x) for x in cut}
        # A paused node keeps its namespace: block it too; probe only from nodes that run.
        blockable = {x for x, st in states.items() if st in ("running", "paused")}
        running = {x for x in blockable if states[x] == "running"}
        method = "iptables"
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda x: self._block(x, [ips[y] for y in sorted(cut[x])]), sorted(blockable)))
        if any(code == 3 for code, _ in results):
            method = self._fallback_disconnect(nodes, cut)
        elif any(code != 0 for code, _ in results):
            bad = next(out for code, out in results if code != 0)
            raise HarnessError(f"partition: iptables failed: {bad.strip()[-200:]}")
        # Observed from inside (the node's namespace, through its helper): a node on one side can no
        # longer reach one on the other.
        checked = {}
        for x in sorted(running & set(self.helpers))[:2]:
            y = sorted(cut[x])[0]
            checked[f"{x}->{y}"] = reach(self.helpers[x], x, [ips[y]])[ips[y]]
        if method == "iptables" and any(v != "timeout" for v in checked.values()):
            raise HarnessError(f"partition: rules in place but packets still flow: {checked}")
        sides = _components(nodes, cut)
        return self.effect(sorted(cut), grouping=self.p["grouping"], method=method, sides=sides,
                           cut={x: sorted(ys) for x, ys in cut.items()}, probe=checked)

    def _block(self, node: str, ips: list[str]) -> tuple[int, str]:
        self.started_at[node] = started_at(self.ctx.stack, node)
        helper = start_helper(self.ctx, node, self.chain)
        self.helpers[node] = helper
        c = self.chain
        rules = " ".join(f"$IPT -A {c} -s {ip} -j DROP; $IPT -A {c} -d {ip} -j DROP;" for ip in ips)
        script = (_PICK_IPT + f"$IPT -N {c} 2>/dev/null || $IPT -F {c}; "
                  f"$IPT -C INPUT -j {c} 2>/dev/null || $IPT -I INPUT -j {c}; "
                  f"$IPT -C OUTPUT -j {c} 2>/dev/null || $IPT -I OUTPUT -j {c}; {rules} exit 0")
        return helper_exec(helper, script)

    def _fallback_disconnect(self, nodes: list[str], cut: dict[str, set[str]]) -> str:
        isolated = [x for x, ys in cut.items() if ys == set(nodes) - {x}]
        if not isolated or any(x not in isolated and ys - set(isolated) for x, ys in cut.items()):
            raise HarnessError("partition: iptables does not work on this kernel, and only groupings that "
                               "isolate whole nodes can fall back to docker network disconnect")
        for helper in self.helpers.values():
            remove_helper(helper)
        self.helpers.clear()
        stack = self.ctx.stack
        network = stack.client.networks.get(stack.network_name)
        for x in isolated:
            # A runner killed now must not leave the node off the network: the sweep reconnects it.
            self.undo[x] = journal.record(self.ctx, x, self.name, {"connect": {
                "network": stack.network_name, "ip": stack.node_ip(x), "aliases": [x]}})
            network.disconnect(stack.container(x), force=True)
            self.disconnected.append(x)
        return "network-disconnect"

    def heal(self) -> Effect:
        """Delete every chain through its helper, check from those helpers that every cut pair connects
        again, then remove the helpers (also when the check fails: the rules are gone by then)."""
        stack = self.ctx.stack
        release_cut(stack.run_id, id(self))
        problems = {}
        live = {}  # node -> its helper, still in the node's own namespace, rules deleted
        for node, helper in list(self.helpers.items()):
            if namespace_gone(stack, node, self.started_at.get(node, "")):
                problem = remove_helper(helper)  # the rules went with the node's old namespace
                self.helpers.pop(node, None)
            else:
                problem = undo_rules(helper)
                live[node] = helper
            if problem:
                problems[node] = problem
        if self.disconnected:
            for x in list(self.disconnected):
                try:
                    stack.connect(x)  # at its own address again
                except Exception as exc:  # already connected counts as healed
                    if "already exists" not in str(exc):
                        raise
                self.disconnected.remove(x)
                journal.done(self.undo.pop(x, None))
        try:
            if problems:
                raise HarnessError(f"partition heal: could not remove rules: {problems}")
            connected = self.wait_connected(live)
        finally:
            for node, helper in list(self.helpers.items()):
                remove_helper(helper)  # what its undo left is in `problems`, raised above
                self.helpers.pop(node, None)
        return self.effect(self.nodes, connected=connected)

    def wait_connected(self, helpers: dict[str, object]) -> bool:
        """Every node that had rules, probed from its helper, reaches every other running node of the
        partition again (refused = reachable). A rule drops a pair's packets in both directions, so the
        nodes that had rules cover every pair that was cut; a node whose namespace went away (restarted)
        lost its rules with it, and its peers' side is probed from theirs. A pair that another partition
        in effect still cuts is left out: it connects when that partition heals, which checks it."""
        stack = self.ctx.stack
        running = [x for x in self.nodes if status(stack, x) == "running"]
        sources = [x for x in running if x in helpers]
        still_cut = cut_by_others(stack.run_id, id(self))

        def probe() -> tuple[bool, str]:
            ips = {x: node_ip(stack, x) for x in running}
            silent = {}
            for x in sources:
                others = [ips[y] for y in running if y != x and frozenset((x, y)) not in still_cut]
                answer = reach(helpers[x], x, others) if others else {}
                bad = [ip for ip, how in answer.items() if how == "timeout"]
                if bad:
                    silent[x] = bad
            return not silent, f"unreachable {silent}" if silent else "all pairs connect"

        if len(running) < 2 or not sources:
            return True
        health.wait_for("every partitioned pair to connect again", probe, self.ctx.deadline(30))
        return True


def _components(nodes: list[str], cut: dict[str, set[str]]) -> list[list[str]]:
    """The sides as lists of nodes that see each other (for a report; bridges/rings show overlaps)."""
    seen: list[list[str]] = []
    for x in nodes:
        side = sorted({x} | {y for y in nodes if y != x and y not in cut.get(x, set())})
        if side not in seen:
            seen.append(side)
    return seen
