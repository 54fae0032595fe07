"""Live progress of a run through Python's logging (logger "harness"), so that pytest's live
logs (log_cli), the CLI's stderr handler or any other handler show it: one line per event, and
a `Ticker` for what changes all the time (workload counts, messages still missing)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

log = logging.getLogger("harness")


def say(line: str) -> None:
    """The progress callback that logs: pass it wherever a `progress` callable is taken."""
    log.info(line)


def show_progress(stream: TextIO | None = None) -> None:
    """Progress lines on stderr (or stream) as they come, the way the CLI shows them; only the
    harness' own logger, so that libraries' INFO logs stay out. Once per logger."""
    if not any(getattr(h, "_harness_progress", False) for h in log.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._harness_progress = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def progress_to(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    """A callback that logs each line and also hands it to `progress` (unless that is `say`
    itself, which a caller such as the search passes back down: the line is logged once)."""
    if progress is None or progress is say:
        return say

    def both(line: str) -> None:
        say(line)
        progress(line)

    return both


class Ticker:
    """While in its `with` block, tells `line()` every `interval_s` seconds from a daemon thread
    (not at all for a block shorter than that)."""

    def __init__(self, line: Callable[[float], str], tell: Callable[[str], None] = say,
                 interval_s: float = 1.0) -> None:
        self.line, self.tell, self.interval_s = line, tell, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        started = time.monotonic()

        def tick() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    self.tell(self.line(time.monotonic() - started))
                except Exception:  # noqa: BLE001 - progress must never break the run
                    log.exception("progress line failed")

        self._thread = threading.Thread(target=tick, name="progress-ticker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
