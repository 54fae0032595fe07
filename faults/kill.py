"""`kill`: SIGKILL the targets' containers (no shutdown at all); heal starts them again."""

from __future__ import annotations

from faults.base import Effect, register
from faults.nodes import WAIT_SERVING, NodeFault, ensure_running, wait_serving, wait_status


@register
class Kill(NodeFault):
    name = "kill"
    summary = "SIGKILL the targets' containers; heal starts them and waits until they serve"
    params = (WAIT_SERVING,)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.killed: list[str] = []

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        deadline = self.ctx.deadline(30)
        for node in nodes:
            self.killed.append(node)
            stack.container(node).kill(signal="SIGKILL")
        for node in nodes:
            wait_status(stack, node, ("exited", "dead"), deadline)
        return self.effect(nodes)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        deadline = self.ctx.deadline()
        started = [n for n in self.killed if ensure_running(stack, n, deadline)]
        if self.p["wait_serving"]:
            for node in self.killed:
                wait_serving(stack, node, deadline)
        return self.effect(self.killed, started=started)
