"""`clock-skew`: move the wall clock of the targets' processes by an offset (Jepsen's clock bump, Chaos
Mesh's TimeChaos), as an NTP step would; heal moves it back, itself a jump.

Only nodes whose service opts in with `x-clock: true` in the stack file can be skewed: they run under
the harness's clock library (`stack/clock.py`, `stack/images/clock/chaosclock.c`), which adds the
offset in the node's offset file to every wall-clock read (clock_gettime of the realtime clocks,
gettimeofday, time) within 100 ms. Monotonic clocks, sleeps and timeouts keep running as they were.
The file is written with the Docker API, so the node needs no shell. The previous offset goes to an
undo record first (`faults.journal`), so a sweep sets it back if the runner dies.

What it cannot skew: statically linked programs and Go binaries (they read the clock without libc),
setuid programs (the loader ignores LD_PRELOAD for them), the kernel's own timestamps (file times,
TCP timestamps, cgroup and log times) and any container that did not opt in.
"""

from __future__ import annotations

from faults import journal
from faults.base import Effect, Param, register
from faults.nodes import NodeFault
from harness.errors import HarnessError

OPT_IN = "x-clock: true on its service in the stack file"


def _clock_nodes(topology) -> set[str]:
    return {n.name for n in topology.nodes if getattr(n, "clock", False)}


@register
class ClockSkew(NodeFault):
    name = "clock-skew"
    summary = "move the targets' wall clock by offset_s (nodes with x-clock: true only); heal moves it back"
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    narrow_targets = True  # generated steps aim at targets every node of which opts in
    params = (Param("offset_s", float, 300.0, help="how far the wall clock moves; negative: into the past",
                    unit="s", bounds=(-30 * 86400, 30 * 86400), search=(-3600, 3600)),)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: dict[str, object] = {}  # node -> undo record
        self.undo: dict[str, dict] = {}  # node -> the undo heal applies, the one the record holds

    @classmethod
    def check_topology(cls, params, topology, where):
        if not _clock_nodes(topology):
            raise HarnessError(f"{where}: clock-skew: no node of this stack opts in to clock faults ({OPT_IN})")

    @classmethod
    def check_targets(cls, targets, params, topology, where):
        from faults.roles import possible_nodes

        nodes, _ = possible_nodes(list(targets), topology)
        outside = sorted(nodes - _clock_nodes(topology))
        if outside:
            raise HarnessError(f"{where}: clock-skew: {', '.join(outside)} may be targeted but does not opt in "
                               f"to clock faults ({OPT_IN})")

    def inject(self) -> Effect:
        from stack import clock

        stack = self.ctx.stack
        nodes = self.resolve()
        outside = [n for n in nodes if not stack.topology.node(n).clock]
        if outside:
            raise HarnessError(f"clock-skew: {', '.join(outside)} does not opt in to clock faults ({OPT_IN})")
        offset_ns = int(round(self.p["offset_s"] * 1e9))
        for node in nodes:
            container = stack.container(node)
            self.undo[node] = {"clock": clock.read_offset(container)}
            self.records[node] = journal.record(self.ctx, node, self.name, self.undo[node])
            clock.set_offset(container, offset_ns)
            if clock.read_offset(container) != offset_ns:
                raise HarnessError(f"clock-skew: {node}'s offset file did not take {offset_ns} ns")
        return self.effect(nodes, offset_s=self.p["offset_s"])

    def heal(self) -> Effect:
        stack = self.ctx.stack
        healed = []
        for node, record in list(self.records.items()):
            problem = journal.apply(stack.client, {"container": stack.container(node).id, "undo": self.undo[node]})
            if problem:
                raise HarnessError(f"clock-skew heal: {node}: {problem}")
            journal.done(record)
            self.records.pop(node)
            self.undo.pop(node)
            healed.append(node)
        return self.effect(healed)
