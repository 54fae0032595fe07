"""`index.html` at a report root: one row per run (test, verdict, violations, seconds, link to
its report), the incident catalog's table, and each generated-schedule search (the schedules
tried, the first failure and its shrunk form), read from the stored files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from reports.html import STYLE
from reports.run import HISTORY, REPORT, RUN_FACTS, VERDICT, is_run_dir
from reports.searches import Search, TriedSchedule, read_search, search_roots
from reports.table import RunRow, incident_groups, verdict_text

INDEX = "index.html"


@dataclass(frozen=True)
class IndexRow:
    dir: str                 # the run's directory, relative to the root
    test: str
    status: str              # from verdict.json; "-" when the run wrote none
    violations: tuple[str, ...]
    seconds: float | None
    group: str
    variant: str

    def as_run_row(self) -> RunRow:
        return RunRow(self.group, self.variant, self.status, self.violations, self.seconds or 0.0)


def worker_dirs(root: Path) -> list[Path]:
    """The report subdirectories of pytest-xdist workers (gw0, gw1, ...), merged into the root's index."""
    return sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"gw\d+", p.name))


def run_dirs(root: Path) -> list[Path]:
    """The run directories directly under a report root and under its workers' subdirectories, by name."""
    found = [p for folder in [root, *worker_dirs(root)] for p in folder.iterdir() if p.is_dir() and is_run_dir(p)]
    return sorted(found, key=lambda p: (p.name, str(p)))


def index_row(root: Path, run_dir: Path) -> IndexRow:
    verdict = _stored(run_dir / VERDICT)
    run = _stored(run_dir / RUN_FACTS)
    results = verdict.get("results") or {}
    seconds = run.get("seconds")
    return IndexRow(
        dir=run_dir.relative_to(root).as_posix(), test=str(run.get("test") or run_dir.name),
        status=str(verdict.get("status") or "-"),
        violations=tuple(n for n, r in results.items()
                         if isinstance(r, dict) and r.get("status") == "invalid"),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
        group=str(run.get("group") or run.get("test") or run_dir.name),
        variant=str(run.get("variant") or ""))


def write_index(root: str | Path) -> Path:
    """Draw `index.html` at a report root; HarnessError if it holds no run."""
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"no report directory at {root}")
    dirs = run_dirs(root)
    searches = [read_search(d) for d in search_roots(root)]
    if not dirs and not searches:
        raise HarnessError(f"no runs under {root} (no */{HISTORY})")
    path = root / INDEX
    try:
        path.write_text(index_page([index_row(root, d) for d in dirs], searches, root),
                        encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"cannot write {path}: {e.strerror}") from None
    return path


def index_page(rows: list[IndexRow], searches: list[Search] = (), root: Path = Path(".")) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("valid", "invalid", "unknown")}
    summary = ", ".join(f"<span class='{s}'>{n} {s}</span>" for s, n in counts.items() if n)
    body = [f"<h1>Chaos runs</h1><p>{len(rows)} runs: {summary}</p>",
            "<h2>Runs</h2><table id='runs'><tr><th>test</th><th>verdict</th><th>violations</th>"
            "<th>seconds</th><th>report</th></tr>"]
    for r in rows:
        seconds = "-" if r.seconds is None else f"{r.seconds:.0f}"
        body.append(f"<tr class='run'><td>{escape(r.test)}</td><td class='{escape(r.status)}'>"
                    f"{escape(r.status)}</td><td>{escape(', '.join(r.violations)) or '-'}</td>"
                    f"<td>{seconds}</td><td><a href='{escape(r.dir)}/{REPORT}'>"
                    f"{escape(r.dir)}</a></td></tr>")
    body.append("</table>")
    body.append(_incident_table([r.as_run_row() for r in rows]))
    body += [_search_section(s, root) for s in searches]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>chaos runs"
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def _incident_table(rows: list[RunRow]) -> str:
    incidents, _ = incident_groups(rows)
    if not incidents:
        return "<p>No run of the incident catalog here.</p>"
    out = ["<h2>Incident catalog</h2><table id='incidents'><tr><th>incident</th>"
           "<th>vulnerable</th><th>hardened</th><th>seconds</th></tr>"]
    for group, variants in incidents.items():
        cells = "".join(f"<td class='{escape(v.status) if v else ''}'>"
                        f"{escape(verdict_text(v))}</td>"
                        for v in (variants.get("vulnerable"), variants.get("hardened")))
        seconds = sum(r.seconds for r in variants.values())
        out.append(f"<tr class='incident'><td>{escape(group)}</td>{cells}<td>{seconds:.0f}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _search_section(search: Search, root: Path) -> str:
    name = search.dir.relative_to(root).as_posix() if search.dir != root else search.dir.name
    failing = sum(t.status != "valid" for t in search.tried)
    out = [f"<h2>Generated schedules: {escape(name)}</h2>",
           f"<p>{len(search.tried)} schedules tried, {failing} not valid.</p>"]

    def schedule(t: TriedSchedule, what: str) -> str:
        link = f"{t.dir.relative_to(root).as_posix()}/{REPORT}"
        return (f"<p><b>{what}</b> ({escape(verdict_text_of(t))}, "
                f"<a href='{escape(link)}'>report</a>):</p><pre>"
                + escape("\n".join(t.steps) or "no step") + "</pre>")

    if search.first_failure is not None:
        out.append(schedule(search.first_failure, "First failure"))
    if search.shrunk is not None:
        out.append(schedule(search.shrunk, "Shrunk to"))
    if search.saved is not None:
        out.append(f"<pre class='replay'>chaos-harness replay {escape(str(search.saved))}</pre>")
    out.append("<table class='search'><tr><th>#</th><th>schedule</th><th>verdict</th>"
               "<th>report</th></tr>")
    for i, t in enumerate(search.tried, 1):
        link = f"{t.dir.relative_to(root).as_posix()}/{REPORT}"
        out.append(f"<tr class='tried'><td>{i}</td><td>{'<br>'.join(map(escape, t.steps)) or '-'}"
                   f"</td><td class='{escape(t.status)}'>{escape(verdict_text_of(t))}</td>"
                   f"<td><a href='{escape(link)}'>{escape(t.dir.name)}</a></td></tr>")
    out.append("</table>")
    return "".join(out)


def verdict_text_of(t: TriedSchedule) -> str:
    return t.status + (f" ({', '.join(t.violations)})" if t.violations else "")


def _stored(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot read {path}: {e}") from None
    return data if isinstance(data, dict) else {}
