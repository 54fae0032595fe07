"""`memory-pressure`: a process in each target holds `mib` MiB of touched memory, charged to the node's
memory cgroup, as Pumba's stress and Chaos Mesh's StressChaos do; heal ends it.

The node's own processes then have that much less before its memory limit (`mem_limit` in the stack
file): page cache is reclaimed first, then the kernel's OOM killer picks a process of the node (the
holder or the service). The holder is `python3` run in the node (`docker exec`), so the node's image
needs python3; an image without it is refused at inject, naming the node. The holder's pid goes to an
undo record (`faults.journal`), so a sweep ends it if the runner dies.
"""

from __future__ import annotations

from faults import journal
from faults.base import Effect, Param, register
from faults.nodes import NodeFault, status
from harness.errors import HarnessError
from stack import health

# Allocates and touches the memory, then says so in its pid file and sleeps until killed.
HOLD = ("import os, sys, time\n"
        "size = int(sys.argv[1]) * 1024 * 1024\n"
        "block = bytearray(size)\n"
        "for i in range(0, size, 4096): block[i] = 1\n"
        "open(sys.argv[2] + '.tmp', 'w').write(str(os.getpid()))\n"
        "os.replace(sys.argv[2] + '.tmp', sys.argv[2])\n"
        "while True: time.sleep(3600)\n")


def usage_mib(container) -> float:
    stats = container.stats(stream=False)
    return round(stats.get("memory_stats", {}).get("usage", 0) / 2 ** 20, 1)


@register
class MemoryPressure(NodeFault):
    name = "memory-pressure"
    summary = "hold MiB of touched memory inside the targets (their cgroup); heal frees it"
    short = False  # the ci profile keeps the faults the hardened reference app is shown to survive in a short run
    params = (Param("mib", int, 128, help="memory held in each node", unit="MiB", bounds=(1, 65536),
                    search=(16, 192)),)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pidfile = f"/tmp/chaos-mem-{str(self.ctx.step)[:20]}.pid".replace(" ", "")
        self.held: dict[str, object] = {}  # node -> undo record

    def _kill(self) -> list[str]:
        return ["sh", "-c", f"[ -f {self.pidfile} ] && kill -9 $(cat {self.pidfile}); rm -f {self.pidfile}; exit 0"]

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        before, after = {}, {}
        for node in nodes:
            container = stack.container(node)
            code, _ = stack.exec(node, ["sh", "-c", "command -v python3"], timeout=10)
            if code != 0:
                raise HarnessError(f"memory-pressure: {node} has no python3 to hold the memory with")
            before[node] = usage_mib(container)
            self.held[node] = journal.record(self.ctx, node, self.name, {"exec": [self._kill()]})
            container.exec_run(["python3", "-c", HOLD, str(self.p["mib"]), self.pidfile], detach=True)

            def holding(node=node) -> tuple[bool, str]:
                code, out = stack.exec(node, ["cat", self.pidfile], timeout=5)
                return code == 0 and out.strip().isdigit(), "allocating" if code else out.strip()

            health.wait_for(f"{node} to hold {self.p['mib']} MiB", holding, self.ctx.deadline(60))
            after[node] = usage_mib(container)
        return self.effect(nodes, mib=self.p["mib"], usage_before_mib=before, usage_after_mib=after)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        healed = []
        for node, record in list(self.held.items()):
            code, out = (stack.exec(node, self._kill(), timeout=10) if status(stack, node) == "running"
                         else (0, ""))  # a node that stopped took the holder with it
            if code != 0:
                raise HarnessError(f"memory-pressure heal: {node}: {out.strip()[-200:] or f'exit {code}'}")
            journal.done(record)
            self.held.pop(node)
            healed.append(node)
        return self.effect(healed)
