"""`restart`: a graceful restart (SIGTERM, then SIGKILL after `grace` s) of the targets, one after another."""

from __future__ import annotations

from faults.base import Effect, register
from faults.nodes import GRACE, WAIT_SERVING, NodeFault, ensure_running, stop_and_start, wait_serving


@register
class Restart(NodeFault):
    name = "restart"
    summary = "restart the targets (SIGTERM, SIGKILL after grace s, start); heal makes sure they run"
    params = (GRACE, WAIT_SERVING)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.restarted: list[str] = []

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        deadline = self.ctx.deadline()
        stopped = {}
        for node in nodes:
            self.restarted.append(node)
            stopped[node] = [stop_and_start(stack, node, self.p["grace"])]
            if self.p["wait_serving"]:
                wait_serving(stack, node, deadline)
        return self.effect(nodes, stopped=stopped)

    def heal(self) -> Effect:
        deadline = self.ctx.deadline()
        started = [n for n in self.restarted if ensure_running(self.ctx.stack, n, deadline)]
        return self.effect(self.restarted, started=started)
