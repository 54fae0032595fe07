"""`packet`: packet faults on the targets' network interface, as Jepsen's `packet` nemesis and Pumba do:
loss, duplication, corruption, reordering, delay with jitter, a rate limit. Heal removes them.

They are applied from the NET_ADMIN helper that partitions use (the node needs no capability and no
tool), on the node's egress, so every peer sees them: clients through the proxy and cluster peers alike.

How depends on the kernel, and the fault says which way it went in its effect (`method`):
- `tc netem` when the kernel has `sch_netem`: every parameter, as netem defines it;
- otherwise, what the kernel does have: loss from iptables (`-m statistic` DROP on the node's ingress:
  netfilter cannot drop a locally sent packet silently, the sender would get EPERM), duplication from
  iptables TEE on its egress (a clone to the packet's own destination), the rate from `tc tbf`. Delay, jitter, corruption and
  reordering need netem: asked for without it, the fault refuses at inject, naming the missing module.
  (The machines this project is developed on run a kernel built without `CONFIG_NET_SCH_NETEM`.)
A sweep removes the helper with its chain; the qdisc goes with the helper's undo command (`faults.sweep`).
"""

from __future__ import annotations

from faults.base import Effect, Param, register
from faults.nodes import NodeFault, namespace_gone, started_at, status
from faults.partition import _PICK_IPT, helper_exec, node_ip, remove_helper, start_helper
from harness.errors import HarnessError

NETEM_ONLY = ("delay_ms", "jitter_ms", "corrupt", "reorder")
# The interface on the run's network: the one holding the node's address there.
_IFACE = "IF=$(ip -o -4 addr show | awk -v ip={ip} '$4 ~ \"^\"ip\"/\" {{print $2; exit}}'); [ -n \"$IF\" ] || {{ echo 'no interface holds {ip}'; exit 4; }}; "


def _percent(name: str, help_text: str) -> Param:
    return Param(name, float, None, help=help_text, unit="%", bounds=(0, 100))


@register
class Packet(NodeFault):
    name = "packet"
    summary = ("packet loss, duplication, corruption, reordering, delay/jitter or a rate limit on the targets' "
               "egress (tc netem, or iptables and tbf where the kernel lacks netem); heal removes them")
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    params = (
        _percent("loss", "share of packets dropped (with no parameter at all: 10)"),
        _percent("duplicate", "share of packets sent twice"),
        _percent("corrupt", "share of packets with a flipped bit (netem only)"),
        _percent("reorder", "share of packets sent ahead of the delayed rest (netem only; needs delay_ms)"),
        Param("delay_ms", int, None, help="added delay (netem only)", unit="ms", bounds=(0, 60_000)),
        Param("jitter_ms", int, None, help="delay variation (netem only)", unit="ms", bounds=(0, 60_000)),
        Param("rate_kbit", int, None, help="egress rate limit", unit="kbit/s", bounds=(1, 10_000_000)),
    )

    @classmethod
    def check_params(cls, params, where):
        checked = super().check_params(params, where)
        if all(checked[p.name] is None for p in cls.params):
            checked["loss"] = 10.0  # no parameter: the plain packet fault, 10% loss
        return {k: (v or 0) for k, v in checked.items()}

    @classmethod
    def check_combination(cls, params, where):
        if params["reorder"] and not params["delay_ms"]:
            raise HarnessError(f"{where}: packet reorder needs delay_ms (netem reorders against the delay)")
        if params["jitter_ms"] and not params["delay_ms"]:
            raise HarnessError(f"{where}: packet jitter_ms needs delay_ms")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chain = f"CHAOS-K{str(self.ctx.step)[:20]}".replace(" ", "")
        self.helpers: dict[str, object] = {}
        self.started_at: dict[str, str] = {}  # each node's container start when its qdisc or rules went in
        self.method = ""

    def _netem(self) -> str:
        p = self.p
        args = []
        if p["delay_ms"]:
            args += [f"delay {p['delay_ms']}ms"] + ([f"{p['jitter_ms']}ms"] if p["jitter_ms"] else [])
        for key in ("loss", "duplicate", "corrupt", "reorder"):
            if p[key]:
                args.append(f"{key} {p[key]:g}%")
        if p["rate_kbit"]:
            args.append(f"rate {p['rate_kbit']}kbit")
        return " ".join(args)

    def _fallback(self, ip: str, peers: list[str]) -> str:
        p, c = self.p, self.chain
        # Loss on what arrives on the run network's interface: netfilter cannot drop a locally sent packet
        # silently (the sender gets EPERM, and a dropped SYN fails connect()), so the node's ingress is
        # where a drop looks like loss on the wire. Not loopback: DNS goes there.
        script = (_PICK_IPT + _IFACE.format(ip=ip) + f"$IPT -N {c} 2>/dev/null || $IPT -F {c}; "
                  f"$IPT -C INPUT -i $IF -j {c} 2>/dev/null || $IPT -I INPUT -i $IF -j {c}; ")
        if p["loss"]:
            script += f"$IPT -A {c} -m statistic --mode random --probability {p['loss'] / 100:.4f} -j DROP; "
        if p["duplicate"]:
            # TEE sends a clone of a packet to a gateway: the packet's own destination, one rule per peer
            d = f"{c}-DUP"
            script += (f"$IPT -t mangle -N {d} 2>/dev/null || $IPT -t mangle -F {d}; "
                       f"$IPT -t mangle -C POSTROUTING -j {d} 2>/dev/null || $IPT -t mangle -I POSTROUTING -j {d}; ")
            script += "".join(f"$IPT -t mangle -A {d} -d {peer} -m statistic --mode random --probability "
                              f"{p['duplicate'] / 100:.4f} -j TEE --gateway {peer}; " for peer in peers)
        if p["rate_kbit"]:
            script += (f"tc qdisc replace dev $IF root tbf rate {p['rate_kbit']}kbit "
                       "burst 32kbit latency 400ms || exit 5; ")
        return script + "exit 0"

    def _undo(self, ip: str) -> str:
        c = self.chain
        return (_PICK_IPT + _IFACE.format(ip=ip) + f"$IPT -D INPUT -i $IF -j {c} 2>/dev/null; "
                f"$IPT -F {c} 2>/dev/null; $IPT -X {c} 2>/dev/null; "
                f"$IPT -t mangle -D POSTROUTING -j {c}-DUP 2>/dev/null; $IPT -t mangle -F {c}-DUP 2>/dev/null; "
                f"$IPT -t mangle -X {c}-DUP 2>/dev/null; tc qdisc del dev $IF root 2>/dev/null; "
                + f"if $IPT -S {c} >/dev/null 2>&1; then echo 'chain {c} still there'; exit 1; fi; exit 0")

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        ips = {n.name: node_ip(stack, n.name) for n in stack.topology.nodes if status(stack, n.name) == "running"}
        for node in nodes:
            ip = ips.get(node) or node_ip(stack, node)
            self.started_at[node] = started_at(stack, node)
            helper = start_helper(self.ctx, node, self.chain, fault=self.name, undo=self._undo(ip))
            self.helpers[node] = helper
            code, out = helper_exec(helper, _IFACE.format(ip=ip) + f"tc qdisc replace dev $IF root netem {self._netem()}")
            if code == 0:
                self.method = "netem"
            elif "unknown" in out.lower() and "qdisc" in out.lower():
                missing = [k for k in NETEM_ONLY if self.p[k]]
                if missing:
                    raise HarnessError(f"packet: {', '.join(missing)} need tc netem, and this kernel has no "
                                       "sch_netem (CONFIG_NET_SCH_NETEM); loss, duplicate and rate_kbit work without it")
                peers = sorted(v for k, v in ips.items() if k != node)
                code, out = helper_exec(helper, self._fallback(ip, peers))
                if code != 0:
                    raise HarnessError(f"packet: iptables/tc in {node}'s namespace failed: {out.strip()[-200:]}")
                self.method = "iptables+tbf"
            else:
                raise HarnessError(f"packet: tc netem in {node}'s namespace failed: {out.strip()[-200:]}")
        return self.effect(nodes, method=self.method, **{k: v for k, v in self.p.items() if v})

    def heal(self) -> Effect:
        healed, gone, problems = [], [], {}
        for node, helper in list(self.helpers.items()):
            stale = namespace_gone(self.ctx.stack, node, self.started_at.get(node, ""))
            problem = remove_helper(helper)
            if stale:
                gone.append(node)  # the qdisc and rules went with the node's old namespace: nothing to undo
                problem = ""
            if problem:
                problems[node] = problem
                continue
            self.helpers.pop(node)
            healed.append(node)
        if problems:
            raise HarnessError(f"packet heal: could not remove the qdisc or rules: {problems}")
        return self.effect(healed, stopped_or_restarted=gone)

