"""The reaper: a small host process that removes a run's resources within seconds of its owner's death.

A process that brings a run up (a pytest session, a script) starts one reaper for itself
(`watch_this_process`). The reaper runs in its own session, so a SIGKILL of the owner or of the
owner's whole process group does not reach it; it polls the owner (pid and kernel start time, so a
reused pid is not taken for it) once a second, and when the owner is gone it removes every run that
owner left: containers (fault helpers and the proxy with its toxics among them: they carry the run's
label), networks, and with the helpers the partition rules they hold. Then it exits. It never touches a
detached run, another owner's run, or a run whose owner lives. Like testcontainers' Ryuk, without an
image from a registry and without a privileged container: it is this package, run by the same user.

`CHAOS_REAPER=0` starts none (a killed run then stays until the next `up` or `clean`, which reap it).
Its log, kept only when it removed something: `<cache>/reapers/<pid>-<start>.log`.

    python -m stack.reaper --pid PID --start START [--namespace NS]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from stack import cleanup

POLL_S = 1.0
SETTLE_S = 20.0  # after the owner died, keep looking this long for requests it had in flight
_started: dict[int, subprocess.Popen] = {}  # our pid -> the reaper watching us


def enabled() -> bool:
    return os.environ.get("CHAOS_REAPER", "1") != "0"


def log_dir() -> Path:
    from stack.images import cache_dir

    return cache_dir() / "reapers"


def watch_this_process() -> subprocess.Popen | None:
    """Start the reaper for this process unless one already watches it (or CHAOS_REAPER=0)."""
    pid = os.getpid()
    if not enabled():
        return None
    if pid in _started and _started[pid].poll() is None:
        return _started[pid]
    start = cleanup._process_start(pid)
    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    with open(directory / f"{pid}-{start}.log", "ab") as log:
        _started[pid] = subprocess.Popen(
            [sys.executable, "-m", "stack.reaper", "--pid", str(pid), "--start", start,
             "--namespace", cleanup.namespace()],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=root,
            start_new_session=True, close_fds=True)
    return _started[pid]


def owned_by(labels: dict[str, str], pid: int, start: str, host: str) -> bool:
    return (labels.get(cleanup.LABEL_DETACHED) != "1" and labels.get(cleanup.LABEL_OWNER_PID) == str(pid)
            and labels.get(cleanup.LABEL_OWNER_START) == start and labels.get(cleanup.LABEL_OWNER_HOST) == host)


def reap_owner(client, pid: int, start: str, host: str, say) -> list[str]:
    """Remove every run of this namespace owned by (pid, start, host) whose owner is dead."""
    removed = []
    for run in cleanup.list_runs(client).values():
        if owned_by(run.labels, pid, start, host) and not run.alive:
            cleanup.remove_run(client, run, say)
            removed.append(run.run_id)
    return removed


def watch(pid: int, start: str, say=print) -> list[str]:
    """Wait for the owner to die, then reap what it owned (looking again for SETTLE_S)."""
    from stack.docker_api import docker_client

    host = socket.gethostname()
    say(f"reaper {os.getpid()}: watching owner {pid} (start {start})")
    while cleanup.process_alive(pid, start, host):
        time.sleep(POLL_S)
    died = time.monotonic()
    say(f"reaper: owner {pid} is gone; reaping its runs")
    client = docker_client(timeout=60)
    removed: list[str] = []
    while True:
        found = reap_owner(client, pid, start, host, say)
        removed += found
        if not found and time.monotonic() - died > SETTLE_S:
            break
        time.sleep(POLL_S)
    say(f"reaper: done in {time.monotonic() - died:.1f}s, removed {removed or 'nothing'}")
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.reaper", description=__doc__.split("\n")[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start", required=True, help="the owner's start time (/proc/PID/stat field 22)")
    parser.add_argument("--namespace", help="CHAOS_NAMESPACE of the owner's runs")
    args = parser.parse_args(argv)
    if args.namespace:
        os.environ["CHAOS_NAMESPACE"] = args.namespace

    def say(line: str) -> None:
        print(time.strftime("%H:%M:%S ") + line, flush=True)

    try:
        removed = watch(args.pid, args.start, say)
    except Exception as exc:  # noqa: BLE001 (a reaper that dies says why in its log)
        say(f"reaper: failed: {exc!r}")
        return 1
    if not removed:  # the owner took its runs down itself: nothing worth keeping a log of
        (log_dir() / f"{args.pid}-{args.start}.log").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
