"""`zk-leader-kill`: SIGKILL the ZooKeeper leader; wait until another node leads and record it.

Heal starts the old leader again and waits until it serves (as a follower, normally).
"""

from __future__ import annotations

from faults.base import Effect, Fault, register
from faults.nodes import ensure_running, wait_serving, wait_status
from faults.roles import zk_leader
from stack import health


@register
class ZkLeaderKill(Fault):
    name = "zk-leader-kill"
    summary = "SIGKILL the ZooKeeper leader; waits for and records the new leader; heal starts it again"
    params = ()
    targets_kind = "none"
    needs_targets = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old: str | None = None

    def inject(self) -> Effect:
        stack = self.ctx.stack
        self.old = old = zk_leader(stack)
        stack.container(old).kill(signal="SIGKILL")
        wait_status(stack, old, ("exited", "dead"), self.ctx.deadline(20))
        others = [n for n in stack.topology.names("zookeeper") if n != old]

        def probe() -> tuple[bool, str]:
            modes = {}
            for n in others:
                try:
                    modes[n] = health.zk_mode(stack, n)
                except Exception as exc:
                    modes[n] = type(exc).__name__
            leaders = [n for n, m in modes.items() if m == "leader"]
            return len(leaders) == 1, f"modes {modes}"

        health.wait_for(f"a ZooKeeper node other than {old} to lead", probe, self.ctx.deadline())
        new = zk_leader(stack)
        return Effect((old,), {"old_leader": old, "new_leader": new, "roles": {old: "zk-leader"}})

    def heal(self) -> Effect:
        if self.old is None:
            return Effect((), {})
        stack = self.ctx.stack
        deadline = self.ctx.deadline()
        ensure_running(stack, self.old, deadline)
        wait_serving(stack, self.old, deadline)
        return Effect((self.old,), {"mode": health.zk_mode(stack, self.old), "leader": zk_leader(stack)})
