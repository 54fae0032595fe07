"""Generated-schedule searches as they lie on disk (`harness.search`): a search root holds
`runs/<scenario>/` (one run per schedule tried) and `found/<scenario>.json` (the shrunk failing
schedule, saved for replay). Read back for the index: the schedules tried in the order they ran,
the first failure and its shrunk form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.run import SCENARIO, SCHEDULE, VERDICT, is_run_dir

RUNS, FOUND = "runs", "found"


@dataclass(frozen=True)
class TriedSchedule:
    dir: Path
    steps: tuple[str, ...]          # one line per step: when, fault, whom, for how long
    status: str
    violations: tuple[str, ...]


@dataclass(frozen=True)
class Search:
    dir: Path
    tried: tuple[TriedSchedule, ...]      # in the order they ran
    shrunk: TriedSchedule | None          # the saved failing schedule's run
    saved: Path | None                    # its scenario file, for replay

    @property
    def first_failure(self) -> TriedSchedule | None:
        return next((t for t in self.tried if t.status != "valid"), None)


def is_search_root(path: Path) -> bool:
    return (path / RUNS).is_dir()


def search_roots(root: Path) -> list[Path]:
    """The report root itself if a search wrote there (`chaos-harness search`), and the searches
    directly under it (the generated tests give each search a directory of its own)."""
    from reports.index import worker_dirs

    found = [root] if is_search_root(root) else []
    for folder in [root, *worker_dirs(root)]:
        found += [folder] if folder is not root and is_search_root(folder) else []
        found += sorted(p for p in folder.iterdir() if p.is_dir() and is_search_root(p))
    return found


def search_run_dirs(search_root: Path) -> list[Path]:
    """The runs of a search, in the order they ran: each writes its scenario.json first, once."""
    dirs = [p for p in (search_root / RUNS).iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(dirs, key=lambda p: ((p / SCENARIO).stat().st_mtime_ns
                                       if (p / SCENARIO).is_file() else 0, p.name))


def read_search(search_root: Path) -> Search:
    tried = tuple(_tried(d) for d in search_run_dirs(search_root))
    saved = sorted((search_root / FOUND).glob("*.json")) if (search_root / FOUND).is_dir() else []
    shrunk = None
    if saved:
        # saved as found/<scenario>.json from the run named <scenario>
        shrunk = next((t for t in tried if t.dir.name == saved[-1].stem), None)
    return Search(search_root, tried, shrunk, saved[-1] if saved else None)


def step_lines(schedule: Any) -> tuple[str, ...]:
    steps = schedule.get("steps") if isinstance(schedule, dict) else schedule
    lines = []
    for s in steps if isinstance(steps, list) else []:
        if not isinstance(s, dict):
            continue
        whom = f" {', '.join(map(str, s['targets']))}" if s.get("targets") else ""
        params = f" {json.dumps(s['params'], sort_keys=True)}" if s.get("params") else ""
        span = "until the end" if s.get("duration") is None else f"for {s['duration']:g}s"
        lines.append(f"at {s.get('at', 0):g}s {s.get('fault')}{whom}{params} {span}")
    return tuple(lines)


def _tried(run_dir: Path) -> TriedSchedule:
    verdict = _read(run_dir / VERDICT)
    results = verdict.get("results") or {}
    return TriedSchedule(run_dir, step_lines(_read(run_dir / SCHEDULE)),
                         str(verdict.get("status") or "-"),
                         tuple(n for n, r in results.items()
                               if isinstance(r, dict) and r.get("status") == "invalid"))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
