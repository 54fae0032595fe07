"""Between tests, bring a running stack back to a clean, hardened, healthy state without rebuilding it.

Toxics removed, partitions healed, stopped or paused nodes started, services redeployed to their
spec, then the app's own reset as its stack file declares it (`x-chaos.reset`: the services named
there stop while the steps clear queues, Redis, the app's state and the provider), so nothing of one
test is delivered into the next.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from stack import cleanup
from stack.appsteps import run_steps
from stack.topology import PROXY_API_PORT

if TYPE_CHECKING:
    from stack.stack import Stack


def _heal_containers(stack: "Stack") -> None:
    for node in stack.topology.nodes:
        container = stack.container(node.name)
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()


def _redeploy_drifted_services(stack: "Stack") -> list[str]:
    """Redeploy every service whose running env is not its hardened spec (a switch left on, say)."""
    from faults.deploy import deployed_env

    redeployed = []
    from stack.kinds import kind_of

    for node in stack.topology.nodes:
        if not kind_of(node.role).service:
            continue
        container = stack.container(node.name)
        env = deployed_env(container)
        drift = {k for k, v in node.env.items() if env.get(k) != v}
        drift |= {k for k in env if k.startswith("CHAOS_") and k not in node.env}
        # whatever a deploy set, whatever its name (an app's own MAILER_BUGS as much as CHAOS_SWITCHES)
        drift |= {k for k in container.labels.get(cleanup.LABEL_OVERRIDES, "").split(",") if k}
        if drift:
            stack.redeploy(node.name, None, wait=False)
            redeployed.append(node.name)
    return redeployed


def reset_stack(stack: "Stack") -> float:
    """Reset a running stack (see the module docstring); returns the seconds it took."""
    from faults.toxiproxy.client import ToxiproxyClient

    started = time.monotonic()
    from faults import sweep

    sweep.sweep(stack.client)  # partitions and toxics a dead runner left behind
    _heal_containers(stack)
    if stack.topology.names("proxy"):
        ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}").reset()
    _redeploy_drifted_services(stack)
    app = stack.topology.app
    if app is None:
        stack.wait_healthy()
        return time.monotonic() - started
    stopped = [stack.topology.node(name) for name in app.reset_stop]
    for node in stopped:
        stack.container(node.name).stop(timeout=5)
    stack.wait_healthy([n for n in stack.topology.nodes if n not in stopped])
    run_steps(stack, app.reset, app.base_dir)
    for node in stopped:
        stack.container(node.name).start()
    stack.wait_healthy(stopped)
    return time.monotonic() - started
