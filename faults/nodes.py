"""What faults on containers share: resolving node targets, container states, and "is it serving again?".

`serving(stack, node)` is the outside view a fault waits on after it brings a node back: the node
answers on its own protocol (AMQP handshake, ZooKeeper `srvr` mode, Redis `PING`, the proxy API),
as the node's kind says (`stack/kinds/`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from faults.base import Effect, Fault, NoTarget, Param
from faults.roles import resolve_nodes
from harness.errors import HarnessError
from stack import health

if TYPE_CHECKING:
    from stack.stack import Stack

GRACE = Param("grace", int, 10, help="seconds between SIGTERM and SIGKILL when a container is stopped "
              "(10 as `docker stop`); 0: SIGKILL at once, a crash", unit="s", bounds=(0, 600), search=(0, 10))
WAIT_SERVING = Param("wait_serving", bool, True, help="after bringing a node back, wait until it serves again")


def serving(stack: "Stack", node: str) -> tuple[bool, str]:
    """Whether the node answers on its own protocol, as its kind judges it (`stack.kinds`)."""
    from stack.kinds import kind_of

    return kind_of(stack.topology.node(node).role).serving(stack, node)


def status(stack: "Stack", node: str) -> str:
    container = stack.container(node)
    container.reload()
    return container.status


def started_at(stack: "Stack", node: str) -> str:
    """When the node's container last started: a fault that changed its network namespace records it."""
    container = stack.container(node)
    container.reload()
    return str(container.attrs.get("State", {}).get("StartedAt", ""))


def namespace_gone(stack: "Stack", node: str, since: str) -> bool:
    """The node stopped, or started again, since `since` (`started_at`): rules put in its network namespace
    then went with that namespace, and a helper that joined it is left in an empty one. A paused node keeps
    its namespace."""
    return status(stack, node) in ("exited", "dead", "created") or started_at(stack, node) != since


def wait_status(stack: "Stack", node: str, wanted: tuple[str, ...], deadline: float) -> str:
    return health.wait_for(f"{node} container to be {'/'.join(wanted)}",
                           lambda: ((s := status(stack, node)) in wanted, f"status {s}"), deadline, interval=0.1)


def wait_serving(stack: "Stack", node: str, deadline: float) -> str:
    def probe() -> tuple[bool, str]:
        state = status(stack, node)
        if state != "running":
            return False, f"container {state}"
        return serving(stack, node)

    def timeout(detail: str) -> HarnessError:
        return HarnessError(f"{node}: not serving again in time (last: {detail})", detail=stack.logs_tail(node))

    return health.wait_for(f"{node} to serve", probe, deadline, on_timeout=timeout)


def stop_and_start(stack: "Stack", node: str, grace: int) -> dict:
    """Stop the node's container (SIGTERM, SIGKILL after `grace` s), start it again; how it ended, as data."""
    stopped = stack.stop_node(node, grace)
    stack.container(node).start()
    return stopped.to_data()


def ensure_running(stack: "Stack", node: str, deadline: float) -> bool:
    """Start or unpause the node if needed; True if something had to be done."""
    state = status(stack, node)
    container = stack.container(node)
    if state == "paused":
        container.unpause()
    elif state in ("exited", "created", "dead"):
        container.start()
    elif state == "restarting" or state == "running":
        return False
    else:
        container.start()
    wait_status(stack, node, ("running",), deadline)
    return True


class NodeFault(Fault):
    """A fault whose targets are containers of the stack."""

    targets_kind = "nodes"

    def resolve(self) -> list[str]:
        self.picks: list = []  # what target modes picked (faults.modes.Pick), recorded with the effect
        nodes = resolve_nodes(self.ctx.stack, self.targets, seed=_seed(self.ctx), picks=self.picks)
        if not nodes:
            raise NoTarget(f"targets {self.targets} matched no node"
                           + (f" (picked {[p.to_data() for p in self.picks]})" if self.picks else ""))
        return nodes

    def effect(self, nodes: list[str], **facts) -> Effect:
        stack = self.ctx.stack
        roles = {n: stack.topology.node(n).role for n in nodes}
        picks = getattr(self, "picks", None)
        return Effect(tuple(nodes), {"roles": roles, **facts, **({"picks": [p.to_data() for p in picks]}
                                                                 if picks else {})})


def _seed(ctx) -> str:
    return f"{getattr(ctx.stack, 'seed', 0)}:{ctx.step}"


def gap(seconds: float) -> None:
    """A planned pause between the nodes of a rolling action (not a wait for a condition)."""
    if seconds > 0:
        time.sleep(seconds)
