"""Stopping a container the way orchestrators do: SIGTERM, a grace period, then SIGKILL.

`docker stop` waits 10 s and Kubernetes `terminationGracePeriodSeconds` (30 s) before the SIGKILL; a
deploy that removes the old container with `remove(force=True)` is a crash instead. `stop(container,
grace)` says how the container ended (`Stopped`), so a history can tell a graceful exit (0, or 143:
SIGTERM's default action) from a container that had to be killed (137). `grace=0` is a crash on
purpose: SIGKILL at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

POLL_S = 0.05


@dataclass(frozen=True)
class Stopped:
    """How one container ended."""

    exit_code: int | None  # None: it never exited (a container Docker could not stop)
    killed: bool  # True when the grace ran out (or was 0) and SIGKILL was sent
    seconds: float  # from the first signal to the exit
    grace: float
    was_running: bool = True  # False: it had already exited before we came (exit_code is that exit)

    @property
    def graceful(self) -> bool:
        """Exited on SIGTERM within its grace: 0, or 143 (SIGTERM's default action)."""
        return not self.killed and self.exit_code in (0, 143)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


def _state(container) -> dict:
    container.reload()
    return container.attrs.get("State") or {}


def _signal(container, signal: str) -> None:
    import docker.errors

    try:
        container.kill(signal=signal)
    except docker.errors.APIError as exc:  # exited meanwhile: "is not running" (409)
        if exc.status_code != 409:
            raise


def _wait_exit(container, deadline: float) -> dict | None:
    while True:
        state = _state(container)
        if not state.get("Running") and not state.get("Restarting"):
            return state
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def stop(container, grace: float, kill_wait_s: float = 30.0) -> Stopped:
    """SIGTERM `container`, wait up to `grace` s for it to exit, then SIGKILL it; return how it ended."""
    state = _state(container)
    if not state.get("Running") and not state.get("Restarting"):
        return Stopped(state.get("ExitCode"), False, 0.0, grace, was_running=False)
    if state.get("Paused"):
        container.unpause()  # a frozen process cannot act on SIGTERM
    started = time.monotonic()
    ended = None
    if grace > 0:
        _signal(container, "SIGTERM")
        ended = _wait_exit(container, started + grace)
    killed = ended is None
    if killed:
        _signal(container, "SIGKILL")
        ended = _wait_exit(container, time.monotonic() + kill_wait_s)
    seconds = round(time.monotonic() - started, 3)
    return Stopped(None if ended is None else ended.get("ExitCode"), killed, seconds, grace)
