"""Waiting on a child process's output line by line, with a deadline that holds even when the child
goes quiet (a bare `for line in proc.stderr` blocks for ever on a child that prints nothing)."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import Callable


def wait_for_line(stream, wanted: Callable[[str], bool], deadline_s: float, what: str,
                  proc: subprocess.Popen | None = None) -> str:
    """The first line of `stream` for which `wanted` holds; AssertionError, with the lines seen, if
    the stream ends or `deadline_s` passes first. The stream is read on by a daemon thread after."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while True:
        try:
            line = lines.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line {what} within {deadline_s:.0f}s; last lines: {seen[-10:]}") from None
        if line is None:
            code = proc.wait(timeout=30) if proc is not None else None
            raise AssertionError(f"the child ended (exit {code}) before a line {what}; last lines: {seen[-10:]}")
        seen.append(line.rstrip())
        if wanted(line):
            return line
