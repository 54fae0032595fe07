"""`rabbitmq-leader-stop`: stop the RabbitMQ node leading a quorum queue; wait for and record the new leader.

`mode` stop_app stops the RabbitMQ application (the Erlang VM and container stay up, fast to bring
back); `stop` stops the container (SIGTERM); `kill` SIGKILLs it. Heal starts it again and waits
until `cluster_status` on it lists every node running.
"""

from __future__ import annotations

from faults.base import Effect, Fault, Param, register
from faults.nodes import ensure_running, wait_status
from faults.roles import app_queue, rabbitmq_queue_leader
from harness.errors import HarnessError
from stack import health


@register
class RabbitmqLeaderStop(Fault):
    name = "rabbitmq-leader-stop"
    summary = "stop the node leading a quorum queue; waits for and records the new leader; heal restarts it"
    params = (
        Param("queue", str, None, help="the quorum queue whose leader is stopped (default: the first of the "
                                       "stack file's x-chaos.queues)"),
        Param("mode", str, "stop_app", choices=("stop_app", "stop", "kill")),
    )
    targets_kind = "none"
    needs_targets = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old: str | None = None

    @classmethod
    def check_topology(cls, params, topology, where: str) -> None:
        cls.queue_of(params, topology, where)

    @classmethod
    def queue_of(cls, params, topology, where: str) -> str:
        return app_queue(cls.name, params, topology, where)

    def inject(self) -> Effect:
        stack = self.ctx.stack
        queue = self.queue_of(self.p, stack.topology, f"fault {self.name!r}")
        self.old = old = rabbitmq_queue_leader(stack, queue)
        if len(stack.topology.names("rabbitmq")) < 3:
            raise HarnessError(f"rabbitmq-leader-stop needs 3 RabbitMQ nodes to elect a new leader "
                               f"(topology {stack.topology.name!r})")
        if self.p["mode"] == "stop_app":
            code, out = stack.exec(old, ["rabbitmqctl", "stop_app"], user="rabbitmq", timeout=60)
            if code != 0:
                raise HarnessError(f"{old}: rabbitmqctl stop_app failed: {out.strip()[-200:]}")
        else:
            container = stack.container(old)
            container.stop(timeout=10) if self.p["mode"] == "stop" else container.kill(signal="SIGKILL")
            wait_status(stack, old, ("exited", "dead"), self.ctx.deadline(30))

        def probe() -> tuple[bool, str]:
            leader = rabbitmq_queue_leader(stack, queue, avoid=(old,))
            return leader != old, f"leader {leader}"

        health.wait_for(f"quorum queue {queue} to elect a leader other than {old}", probe, self.ctx.deadline())
        new = rabbitmq_queue_leader(stack, queue, avoid=(old,))
        return Effect((old,), {"queue": queue, "old_leader": old, "new_leader": new, "mode": self.p["mode"],
                               "roles": {old: f"rabbitmq-queue-leader:{queue}"}})

    def heal(self) -> Effect:
        if self.old is None:
            return Effect((), {})
        stack = self.ctx.stack
        deadline = self.ctx.deadline(120)
        ensure_running(stack, self.old, deadline)
        if self.p["mode"] == "stop_app":
            def start() -> tuple[bool, str]:
                code, out = stack.exec(self.old, ["rabbitmqctl", "start_app"], user="rabbitmq", timeout=60)
                return code == 0, out.strip()[-160:]
            health.wait_for(f"{self.old}: rabbitmqctl start_app", start, deadline, interval=2)
        want = sorted(f"rabbit@{n}" for n in stack.topology.names("rabbitmq"))

        def probe() -> tuple[bool, str]:
            running = sorted(health.rabbitmq_cluster_status(stack, self.old).get("running_nodes", []))
            return running == want, f"running nodes {running}"

        health.wait_for(f"{self.old} back in the cluster with every node running", probe, deadline, interval=1)
        return Effect((self.old,), {"rejoined": True})
