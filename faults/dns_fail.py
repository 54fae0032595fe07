"""`dns-fail`: the targets' DNS queries go unanswered (Chaos Mesh's DNSChaos, on Docker); heal answers again.

Containers on a user-defined network ask Docker's embedded resolver at 127.0.0.11. An iptables DROP of
that address in each target's network namespace, from the NET_ADMIN helper that partitions use (so the
node needs no capability and no tool), makes every lookup time out: open connections keep working, and
whatever reconnects by name cannot. Inject checks from inside the namespace that a peer's name resolved
before and no longer does; heal deletes the chain and checks that it resolves again. A sweep removes the
helper and its chain if the runner dies (`faults.sweep`).

A node stopped or restarted during the fault (a kill, a redis-failover by kill, a deploy) comes back in a new
namespace without the rule: the helper is left in the old one, where nothing resolves any more. Heal
then checks the node's own namespace from a fresh helper (a stopped node has none to check), rather
than failing on the stale one; the effect names such nodes under `stopped_or_restarted`.
"""

from __future__ import annotations

from faults.base import Effect, register
from faults.nodes import NodeFault, namespace_gone, started_at, status
from faults.partition import _PICK_IPT, helper_exec, remove_helper, start_helper, unblock_script
from harness.errors import HarnessError
from stack import health

RESOLVER = "127.0.0.11"


def lookup(helper, name: str) -> int:
    """getent's exit in the helper (it shares the node's network and resolv.conf): 0 resolved, else not."""
    code, _ = helper_exec(helper, f"timeout 3 getent hosts {name} >/dev/null 2>&1")
    return code


@register
class DnsFail(NodeFault):
    name = "dns-fail"
    summary = "drop the targets' queries to Docker's DNS (lookups time out, open connections live); heal restores"
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    params = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chain = f"CHAOS-D{str(self.ctx.step)[:20]}".replace(" ", "")
        self.helpers: dict[str, object] = {}
        self.started_at: dict[str, str] = {}  # each node's container start when its rule went in
        self.peer = ""

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        self.peer = next(n.name for n in stack.topology.nodes if n.name not in nodes[:1])
        c = self.chain
        for node in nodes:
            self.started_at[node] = started_at(stack, node)
            helper = start_helper(self.ctx, node, c, fault=self.name)
            self.helpers[node] = helper
            if lookup(helper, self.peer) != 0:
                raise HarnessError(f"dns-fail: {node} cannot resolve {self.peer} even before the fault")
            code, out = helper_exec(helper, _PICK_IPT + (
                f"$IPT -N {c} 2>/dev/null || $IPT -F {c}; $IPT -C OUTPUT -j {c} 2>/dev/null || $IPT -I OUTPUT -j {c}; "
                f"$IPT -A {c} -d {RESOLVER} -j DROP; exit 0"))
            if code != 0:
                raise HarnessError(f"dns-fail: iptables in {node}'s namespace failed: {out.strip()[-200:]}")
        failing = {node: lookup(helper, self.peer) for node, helper in self.helpers.items()}
        if any(code == 0 for code in failing.values()):
            raise HarnessError(f"dns-fail: rules in place but {self.peer} still resolves from {failing}")
        return self.effect(nodes, resolver=RESOLVER, probe_name=self.peer)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        healed, gone, problems = [], [], {}
        for node, helper in list(self.helpers.items()):
            if namespace_gone(stack, node, self.started_at.get(node, "")):
                # the rule went with the node's old namespace, where the helper sits
                remove_helper(helper)
                self.helpers.pop(node)
                gone.append(node)
                if status(stack, node) == "running":
                    checker = start_helper(self.ctx, node, self.chain, fault=self.name)
                    try:
                        self._wait_resolves(node, checker)
                    finally:
                        remove_helper(checker)
                healed.append(node)
                continue
            code, out = helper_exec(helper, unblock_script(self.chain))
            if code != 0:
                problems[node] = out.strip()[-200:] or f"exit {code}"
                continue
            self._wait_resolves(node, helper)
            remove_helper(helper)
            self.helpers.pop(node)
            healed.append(node)
        if problems:
            raise HarnessError(f"dns-fail heal: could not remove rules: {problems}")
        return self.effect(healed, stopped_or_restarted=gone)

    def _wait_resolves(self, node: str, helper) -> None:
        """Checked from a helper in the node's namespace: the node needs no tool of its own."""
        health.wait_for(f"{node} resolves {self.peer} again",
                        lambda: (lookup(helper, self.peer) == 0, f"getent hosts {self.peer} fails"),
                        self.ctx.deadline(30))

