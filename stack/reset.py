"""Between tests, bring a running stack back to a clean, hardened, healthy state without rebuilding it.

Toxics removed, partitions healed, stopped or paused nodes started, services redeployed to their
spec, then the app's own reset as its stack file declares it (`x-chaos.reset`: the services named
there stop while the steps clear queues, Redis, the app's state and the provider), so nothing of one
test is delivered into the next.

The services named there stop together, and the rest of the stack's health is checked while they
stop: a graceful stop waits on the service to finish what it holds (its grace), and nothing in the
steps needs more than that the stopped services are gone and the others are healthy. `timings`, when
given, receives the seconds of each part (benchmarks/runs.py reports them).

A reset does only what the last run disturbed. When nothing has (no fault acted through a
`FaultContext`, no deploy or stop, no sweep removal, and Docker reports no container event on the run
since it was last found healthy: no crash, kill, restart, pause or new helper), the drift and clock
checks are skipped and each kind's `settled_checks` stand in for its full checks (RabbitMQ: AMQP on each
node instead of the CLI's cluster_status). After anything else, the full reset runs.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from stack import cleanup, clock
from stack.appsteps import run_steps
from stack.topology import PROXY_API_PORT

if TYPE_CHECKING:
    from stack.stack import Stack

STOP_GRACE_S = 5  # a reset's stop of a service: SIGTERM, then SIGKILL after this many seconds
# Docker events that change a container or its network: any of them on the run since it was last found
# healthy sends the reset down its full path. Exec, archive and health events are the harness's own probes.
DISTURBING = frozenset({"create", "start", "restart", "die", "kill", "stop", "pause", "unpause", "oom",
                        "destroy", "update", "rename", "connect", "disconnect"})


@contextmanager
def _timed(timings: dict[str, float] | None, part: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        if timings is not None:
            timings[part] = timings.get(part, 0.0) + time.monotonic() - started


def _states(stack: "Stack") -> dict[str, str]:
    """Each of the run's containers' state, from one list call rather than one inspect per node."""
    listed = stack.client.containers.list(all=True, sparse=True, ignore_removed=True,
                                          filters={"label": f"{cleanup.LABEL_RUN}={stack.run_id}"})
    states = {}
    for container in listed:
        node = (container.attrs.get("Labels") or {}).get(cleanup.LABEL_NODE)
        if node:
            states[node] = str(container.attrs.get("State", ""))
    return states


def _heal_containers(stack: "Stack") -> None:
    states = _states(stack)
    for node in stack.topology.nodes:
        state = states.get(node.name)
        if state == "running":
            continue
        container = stack.container(node.name)  # missing from the list: let the inspect say why
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
        expected = spec_env(node)
        drift = {k for k, v in expected.items() if env.get(k) != v}
        drift |= {k for k in env if k.startswith("CHAOS_") and k not in expected}
        # whatever a deploy set, whatever its name (an app's own MAILER_BUGS as much as CHAOS_SWITCHES)
        drift |= {k for k in container.labels.get(cleanup.LABEL_OVERRIDES, "").split(",") if k}
        if drift:
            stack.redeploy(node.name, None, wait=False)
            redeployed.append(node.name)
    return redeployed


def spec_env(node) -> dict[str, str]:
    """The env a node's container is created with: its spec's, plus the clock library's on a node that
    opted in to clock faults (`x-clock`). Counting only the spec's, every reset found the clock's
    CHAOS_CLOCK_FILE on the API and workers and redeployed them: 2.3 s of each reset on `default`."""
    env = dict(node.env)
    if node.clock:
        env.update(clock.node_env())
    return env


def _zero_clocks(stack: "Stack") -> list[str]:
    """Set back to 0 any clock offset a clock-skew left (a heal that failed): a container that is not
    redeployed keeps its offset file."""
    zeroed = []
    for node in stack.topology.nodes:
        if node.clock:
            container = stack.container(node.name)
            if clock.read_offset(container) != 0:
                clock.set_offset(container, 0)
                zeroed.append(node.name)
    return zeroed


def disturbances(stack: "Stack") -> list[str]:
    """What Docker saw happen to the run's containers and network since `stack.quiet_since`, as
    "node action" lines; ["unknown"] when the stack's state is not known (never checked, or noted
    disturbed). The daemon is this machine's (`--chaos-docker-hosts` takes local ones only), so the host's
    clock is the daemon's."""
    since = stack.quiet_since
    if since is None:
        return ["unknown"]
    until = time.time()
    seen = []
    for event in stack.client.events(since=f"{since:.9f}", until=f"{until:.9f}", decode=True,
                                     filters={"label": f"{cleanup.LABEL_RUN}={stack.run_id}"}):
        action = str(event.get("Action") or event.get("status") or "").split(":")[0]
        if action in DISTURBING and event.get("timeNano", 0) / 1e9 >= since:
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            seen.append(f"{attributes.get(cleanup.LABEL_NODE) or attributes.get('name', '?')} {action}")
    return seen


def reset_stack(stack: "Stack", timings: dict[str, float] | None = None) -> float:
    """Reset a running stack (see the module docstring); returns the seconds it took."""
    from faults.toxiproxy.client import ToxiproxyClient

    started = time.monotonic()
    from faults import sweep

    with _timed(timings, "sweep"):
        if sweep.sweep(stack.client):  # partitions and toxics a dead runner left behind
            stack.note_disturbed()
        disturbed = disturbances(stack)
    stack.quiet_since = None  # until this reset has found the stack healthy again
    with _timed(timings, "heal"):
        _heal_containers(stack)
        if stack.topology.names("proxy"):
            ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', PROXY_API_PORT)}").reset()
        if disturbed:
            _redeploy_drifted_services(stack)
            _zero_clocks(stack)
    app = stack.topology.app
    if app is None:
        with _timed(timings, "health"):
            stack.wait_healthy(settled=not disturbed)
        stack.last_disturbances = disturbed
        stack.quiet_since = time.time()
        return time.monotonic() - started
    stopped = [stack.topology.node(name) for name in app.reset_stop]
    with ThreadPoolExecutor(max_workers=max(1, len(stopped))) as pool:
        with _timed(timings, "stop"):
            stops = [pool.submit(stack.container(node.name).stop, timeout=STOP_GRACE_S) for node in stopped]
        with _timed(timings, "health"):
            stack.wait_healthy([n for n in stack.topology.nodes if n not in stopped], settled=not disturbed)
        with _timed(timings, "stop"):  # what the stops take beyond the health check they overlap
            for stop in stops:
                stop.result()
    with _timed(timings, "steps"):
        run_steps(stack, app.reset, app.base_dir)
    with _timed(timings, "start"):
        with ThreadPoolExecutor(max_workers=max(1, len(stopped))) as pool:
            for started_one in [pool.submit(stack.container(node.name).start) for node in stopped]:
                started_one.result()
        stack.wait_healthy(stopped)
    stack.last_disturbances = disturbed
    stack.quiet_since = time.time()
    return time.monotonic() - started
