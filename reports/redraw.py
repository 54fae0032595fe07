"""Re-draw reports offline from stored files, as Jepsen's `analyze` does: one run's
`report.html`, or every run's and the `index.html` of a whole report root."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from reports.html import write_run_report
from reports.index import run_dirs, write_index
from reports.run import HISTORY, is_run_dir
from reports.searches import search_roots, search_run_dirs


def redraw(path: str | Path, progress: Callable[[str], None] | None = None) -> list[Path]:
    """The pages drawn, run reports first, then the index if path is a report root."""
    say = progress or (lambda line: None)
    path = Path(path)
    if not path.is_dir():
        raise HarnessError(f"no report directory at {path}")
    if is_run_dir(path):
        return [write_run_report(path)]
    dirs = run_dirs(path) + [d for s in search_roots(path) for d in search_run_dirs(s)]
    if not dirs:
        raise HarnessError(f"{path} holds no run: no {HISTORY} in it or in its directories")
    pages = []
    for d in dirs:
        say(f"[report] drawing {d}")
        pages.append(write_run_report(d))
    pages.append(write_index(path))
    return pages
