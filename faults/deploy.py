"""Deploys as faults: redeploy a node with a configuration override, roll it across a group, roll back.

A deploy replaces the node's container (`Stack.redeploy`: same name, address and ports) with its spec
plus an env override; incident switches travel as `CHAOS_SWITCHES=a,b`. Every deploy pushes the env it
replaced onto `FaultContext.deploys[node]`; heal (or a `rollback` step) redeploys that previous env.
A deploy already rolled back by a `rollback` step heals as a no-op.

Every replacement stops the old container as orchestrators do (SIGTERM, SIGKILL after `grace` s;
`grace: 0` deploys by crashing it), and the effect records how each old container ended (`stopped`:
exit code, whether it had to be killed, seconds).
"""

from __future__ import annotations

from faults.base import Effect, Param, register
from faults.nodes import GRACE, NodeFault, gap, wait_serving

SWITCHES = Param("switches", list, None, help="incident switches, deployed as CHAOS_SWITCHES=a,b")
ENV = Param("env", dict, None, help="other environment variables to override")


def deployed_env(container) -> dict[str, str]:
    container.reload()
    return dict(e.split("=", 1) for e in container.attrs["Config"].get("Env") or [] if "=" in e)


def redeploy(ctx, node: str, env: dict[str, str], grace: int) -> dict:
    """Replace the node's container, then wait until this one node serves (the stack's own checks may
    judge a whole group, e.g. a Redis master with its replicas); how the old container ended, as data."""
    stopped = ctx.stack.redeploy(node, env, wait=False, grace=grace)
    wait_serving(ctx.stack, node, ctx.deadline())
    return stopped.to_data()


class _Deploying(NodeFault):
    """Shared by deploy and rolling-deploy: push the current override, redeploy, pop on rollback."""

    replaces_containers = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.done: list[tuple[str, int]] = []  # (node, depth of our entry in ctx.deploys[node])
        self.stopped: dict[str, list[dict]] = {}  # node -> how each container we replaced ended

    def override(self) -> dict[str, str]:
        env = {str(k): str(v) for k, v in (self.p["env"] or {}).items()}
        if self.p["switches"] is not None:
            env["CHAOS_SWITCHES"] = ",".join(self.p["switches"])
        return env

    def deploy_one(self, node: str) -> dict[str, str]:
        history = self.ctx.deploys.setdefault(node, [])
        current = history[-1][1] if history else {}
        new = {**current, **self.override()}
        history.append((current, new))
        self.done.append((node, len(history)))
        self.stopped.setdefault(node, []).append(redeploy(self.ctx, node, new, self.p["grace"]))
        env = deployed_env(self.ctx.stack.container(node))
        missing = {k: v for k, v in new.items() if env.get(k) != v}
        if missing:
            from harness.errors import HarnessError
            raise HarnessError(f"{node}: redeployed container lacks {missing}")
        return new

    def rollback_one(self, node: str, depth: int) -> bool:
        history = self.ctx.deploys.get(node, [])
        if len(history) != depth:  # already rolled back (or deployed over by a later step)
            return False
        previous, _ = history.pop()
        self.stopped.setdefault(node, []).append(redeploy(self.ctx, node, previous, self.p["grace"]))
        return True

    def heal(self) -> Effect:
        """Roll back what this step deployed, newest first (a no-op where a later step already did)."""
        rolled = [n for n, depth in reversed(self.done) if self.rollback_one(n, depth)]
        self.done.clear()
        return Effect(tuple(rolled), {"rolled_back": rolled, "stopped": self.take_stopped()})

    def take_stopped(self) -> dict[str, list[dict]]:
        """How the containers replaced since the last call ended (for the inject's or heal's effect)."""
        stopped, self.stopped = self.stopped, {}
        return stopped


@register
class Deploy(_Deploying):
    name = "deploy"
    short = False  # a new container that must serve, and another one at heal
    summary = "redeploy the targets with an env override (CHAOS_SWITCHES); heal rolls back to the previous env"
    params = (SWITCHES, ENV, GRACE)

    def inject(self) -> Effect:
        nodes = self.resolve()
        deployed = {node: self.deploy_one(node) for node in nodes}
        return self.effect(nodes, deployed=deployed, stopped=self.take_stopped())


@register
class RollingDeploy(_Deploying):
    name = "rolling-deploy"
    short = False
    acts_on_groups = True
    summary = "deploy the override to each target in turn (each healthy first, then `gap` s); heal rolls back"
    params = (SWITCHES, ENV, Param("gap", float, 5.0, help="seconds between nodes", unit="s", bounds=(0, 600)), GRACE)

    def inject(self) -> Effect:
        nodes = self.resolve()
        deployed = {}
        for i, node in enumerate(nodes):
            if i:
                gap(self.p["gap"])
            deployed[node] = self.deploy_one(node)
            self.ctx.say(f"rolling-deploy: {node} deployed")
        return self.effect(nodes, deployed=deployed, order=list(deployed), stopped=self.take_stopped())


@register
class Rollback(NodeFault):
    name = "rollback"
    short = False
    follows = ("deploy", "rolling-deploy")
    replaces_containers = True
    summary = "roll the targets back to the env they had before their last deploy (now, not at heal)"
    params = (GRACE,)

    def inject(self) -> Effect:
        nodes = self.resolve()
        rolled, stopped = {}, {}
        for node in nodes:
            history = self.ctx.deploys.get(node, [])
            if history:
                previous, _ = history.pop()
                stopped[node] = [redeploy(self.ctx, node, previous, self.p["grace"])]
                rolled[node] = previous
        if not rolled:
            from faults.base import NoTarget
            raise NoTarget(f"no deploy to roll back on {nodes}")
        return self.effect(list(rolled), restored=rolled, stopped=stopped)

    def heal(self) -> Effect:
        return Effect((), {})
