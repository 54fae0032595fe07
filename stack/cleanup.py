"""Labels every run's resources carry, and the reaping of runs whose owner is gone.

A run is either owned by a process (a pytest session, a script: its resources die with it, and the
next `up` or `clean` reaps them if it was killed) or detached (`chaos-harness up`: kept until `down`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable

LABEL_PROJECT = "chaos-harness"
LABEL_RUN = "chaos-harness.run"
LABEL_NODE = "chaos-harness.node"
LABEL_ROLE = "chaos-harness.role"
LABEL_TOPOLOGY = "chaos-harness.topology"
LABEL_OWNER_PID = "chaos-harness.owner-pid"
LABEL_OWNER_START = "chaos-harness.owner-start"
LABEL_OWNER_HOST = "chaos-harness.owner-host"
LABEL_DETACHED = "chaos-harness.detached"
LABEL_OVERRIDES = "chaos-harness.overrides"  # variables a deploy set apart from the spec (comma-separated)
LABEL_KIND = "chaos-harness.kind"  # "node", "helper" (partition helpers), "network"
LABEL_NAMESPACE = "chaos-harness.namespace"
LABEL_SERVICES = "chaos-harness.services"
LABEL_STACK_FILE = "chaos-harness.stack-file"  # the stack file a run was built from (attach reads it)


def namespace() -> str:
    """Runs are grouped by namespace (CHAOS_NAMESPACE): `clean` and reaping stay inside their own."""
    return os.environ.get("CHAOS_NAMESPACE", "default")


def _process_stat(pid: int) -> tuple[str, str]:
    """A process's state letter and the kernel's start time ("", "" when there is no such process)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return "", ""


def _process_start(pid: int) -> str:
    """The kernel's start time of a process, so a reused pid is not taken for its owner."""
    return _process_stat(pid)[1]


def owner_labels(detached: bool) -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL_PROJECT: "1",
        LABEL_NAMESPACE: namespace(),
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_START: _process_start(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_DETACHED: "1" if detached else "0",
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that owns a run still lives. Unknown (other host) counts as alive."""
    if labels.get(LABEL_DETACHED) == "1":
        return True
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    state, start = _process_stat(pid)
    # A zombie is dead: it keeps its pid and start time only until its parent waits for it, and a
    # parent that never does (pytest-xdist's controller, with a SIGKILLed worker) would keep its runs
    # for as long as the parent lives.
    return state not in ("Z", "X") and start == labels.get(LABEL_OWNER_START, "")


def process_alive(pid: int | str, start: str, host: str | None = None) -> bool:
    """Whether process `pid`, started at `start` (kernel ticks), still runs on `host` (default: here)."""
    return owner_alive({LABEL_OWNER_PID: str(pid), LABEL_OWNER_START: start,
                        LABEL_OWNER_HOST: host or socket.gethostname(), LABEL_DETACHED: "0"})


@dataclass(frozen=True)
class RunResources:
    run_id: str
    containers: tuple
    networks: tuple
    labels: dict

    @property
    def alive(self) -> bool:
        return owner_alive(self.labels)


def list_runs(client) -> dict[str, RunResources]:
    selector = [LABEL_RUN, f"{LABEL_NAMESPACE}={namespace()}"]
    containers = client.containers.list(all=True, filters={"label": selector}, ignore_removed=True)
    networks = client.networks.list(filters={"label": selector})
    runs: dict[str, dict] = {}

    def add(kind: str, obj, labels: dict | None) -> None:
        labels = labels or {}
        entry = runs.setdefault(labels[LABEL_RUN], {"containers": [], "networks": [], "labels": labels})
        entry[kind].append(obj)

    for container in containers:
        add("containers", container, container.labels)
    for network in networks:
        add("networks", network, network.attrs.get("Labels"))
    return {run: RunResources(run, tuple(v["containers"]), tuple(v["networks"]), v["labels"])
            for run, v in runs.items()}


def remove_run(client, run: RunResources, progress: Callable[[str], None] | None = None) -> None:
    import docker.errors

    for container in run.containers:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    for network in run.networks:
        try:
            network.reload()
            for cid in (network.attrs.get("Containers") or {}):
                try:
                    network.disconnect(cid, force=True)
                except docker.errors.APIError:
                    pass
            network.remove()
        except docker.errors.NotFound:
            pass
    if progress:
        progress(f"[clean] removed run {run.run_id}: {len(run.containers)} containers, "
                 f"{len(run.networks)} networks")


def reap_dead_runs(client, progress: Callable[[str], None] | None = None) -> list[str]:
    """Remove the resources of runs whose owning process is gone (e.g. a SIGKILLed test)."""
    reaped = []
    for run in list_runs(client).values():
        if not run.alive:
            remove_run(client, run, progress)
            reaped.append(run.run_id)
    return reaped


def clean_all(client, progress: Callable[[str], None] | None = None) -> list[str]:
    """Remove every labelled resource, whichever run it belongs to."""
    removed = []
    for run in list_runs(client).values():
        remove_run(client, run, progress)
        removed.append(run.run_id)
    return removed
