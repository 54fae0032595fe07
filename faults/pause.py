"""`pause`: freeze the targets' processes (cgroup freezer, `docker pause`); heal unpauses them.

A paused node sees no time pass: a paused RabbitMQ node makes an asymmetric partition (it never sees
its peers go), and a paused Sentinel enters TILT for 30 s after unpause (stack-facts 1.5, 3.1).
"""

from __future__ import annotations

from faults.base import Effect, register
from faults.nodes import NodeFault, status, wait_status


@register
class Pause(NodeFault):
    name = "pause"
    summary = "docker pause the targets; heal unpauses them"
    params = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.paused: list[str] = []

    def inject(self) -> Effect:
        stack = self.ctx.stack
        nodes = self.resolve()
        deadline = self.ctx.deadline(30)
        for node in nodes:
            self.paused.append(node)
            stack.container(node).pause()
            wait_status(stack, node, ("paused",), deadline)
        return self.effect(nodes)

    def heal(self) -> Effect:
        stack = self.ctx.stack
        deadline = self.ctx.deadline(30)
        unpaused = []
        for node in self.paused:
            if status(stack, node) == "paused":
                stack.container(node).unpause()
                unpaused.append(node)
            wait_status(stack, node, ("running", "exited"), deadline)
        return self.effect(self.paused, unpaused=unpaused)
