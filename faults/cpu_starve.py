"""`cpu-starve`: cap the targets' CPU (`docker update --cpu-quota`, the CFS quota), as Pumba's and Chaos
Mesh's stress faults starve a node; heal gives back the limit each node had.

A starved node is slow, not dead: heartbeats arrive late, elections and session timeouts fire, queues
back up. The previous limit is written to an undo record first (`faults.journal`), so a sweep restores it
if the runner dies before heal.
"""

from __future__ import annotations

from faults import journal
from faults.base import Effect, Param, register
from faults.nodes import NodeFault
from harness.errors import HarnessError

PERIOD_US = 100_000  # the CFS period the quota is a share of


@register
class CpuStarve(NodeFault):
    name = "cpu-starve"
    summary = "cap the targets' CPU to a share of one core (the CFS quota); heal restores the limit"
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    params = (Param("cpus", float, 0.05, help="CPU the node may use, in cores", unit="cores",
                    bounds=(0.01, 64), search=(0.1, 0.5)),)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.before: dict[str, dict] = {}  # node -> update kwargs that restore it
        self.records: dict[str, object] = {}

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        quota = max(1000, int(self.p["cpus"] * PERIOD_US))
        seen = {}
        for node in nodes:
            container = stack.container(node)
            container.reload()
            host = container.attrs["HostConfig"]
            if host.get("NanoCpus"):
                raise HarnessError(f"cpu-starve: {node} was started with --cpus; its quota cannot be changed "
                                   "the other way (Docker refuses both at once)")
            # -1: no quota, as before (0 would leave the new quota in place)
            restore = {"cpu_quota": host.get("CpuQuota") or -1, "cpu_period": host.get("CpuPeriod") or PERIOD_US}
            self.records[node] = journal.record(self.ctx, node, self.name, {"update": restore})
            self.before[node] = restore
            stack.client.api.update_container(container.id, cpu_quota=quota, cpu_period=PERIOD_US)
            container.reload()
            seen[node] = container.attrs["HostConfig"].get("CpuQuota")
            if seen[node] != quota:
                raise HarnessError(f"cpu-starve: {node} shows CpuQuota {seen[node]} after update, not {quota}")
        return self.effect(nodes, cpus=self.p["cpus"], cpu_quota_us=seen, cpu_period_us=PERIOD_US)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        healed = []
        for node, restore in list(self.before.items()):
            problem = journal.apply(stack.client, {"container": stack.container(node).id, "undo": {"update": restore}})
            if problem:
                raise HarnessError(f"cpu-starve heal: {node}: {problem}")
            journal.done(self.records.pop(node, None))
            self.before.pop(node)
            healed.append(node)
        return self.effect(healed)
