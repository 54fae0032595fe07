"""`rolling-restart`: restart (or kill and start) each target in turn, waiting until it serves, then a gap."""

from __future__ import annotations

from faults.base import Effect, Param, register
from faults.nodes import GRACE, NodeFault, ensure_running, gap, stop_and_start, wait_serving, wait_status


@register
class RollingRestart(NodeFault):
    name = "rolling-restart"
    short = False  # every target in turn, each until it serves again, with gaps
    acts_on_groups = True
    summary = "restart the targets one at a time: each must serve again, then `gap` s before the next"
    params = (
        Param("gap", float, 5.0, help="seconds between one node serving again and the next one going down",
              unit="s", bounds=(0, 600)),
        Param("mode", str, "restart", choices=("restart", "kill"), help="graceful restart or SIGKILL + start"),
        GRACE,
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.touched: list[str] = []

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        order, stopped = [], {}
        for i, node in enumerate(nodes):
            if i:
                gap(self.p["gap"])
            deadline = self.ctx.deadline()
            self.touched.append(node)
            container = stack.container(node)
            if self.p["mode"] == "kill":
                container.kill(signal="SIGKILL")
                wait_status(stack, node, ("exited", "dead"), deadline)
                container.start()
            else:
                stopped[node] = [stop_and_start(stack, node, self.p["grace"])]
            wait_serving(stack, node, deadline)
            order.append(node)
            self.ctx.say(f"rolling-restart: {node} serves again")
        return self.effect(nodes, order=order, stopped=stopped)

    def heal(self) -> Effect:
        deadline = self.ctx.deadline()
        started = [n for n in self.touched if ensure_running(self.ctx.stack, n, deadline)]
        return self.effect(self.touched, started=started)
