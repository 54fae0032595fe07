"""The verdict: all checkers composed into valid / invalid / unknown, a human summary, JSON,
and `check_file`, the body of the CLI verb `check FILE`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.checkers import CHECKERS, HEALTH_BOUND_S, LATE_BOUND_S, CheckResult, FaultWindow, Status, facts_of
from harness.checkers.facts import NS, load_with_facts
from harness.errors import HarnessError
from harness.history import History, Op, as_history, gc_paused

EXIT_CODES: Mapping[Status, int] = {"valid": 0, "invalid": 1, "unknown": 2}


@dataclass(frozen=True)
class Verdict:
    """All checkers' results on one history. Fault windows are kept for the report."""

    status: Status
    results: Mapping[str, CheckResult]
    windows: tuple[FaultWindow, ...]
    ops: int
    origin: int   # monotonic ns of the first op; report times are seconds after it
    drained: bool

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ops": self.ops, "drained": self.drained,
                "windows": [self._window_dict(w) for w in self.windows],
                "results": {name: r.to_dict() for name, r in self.results.items()}}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def summary(self) -> str:
        """A few lines for a tester: each violated invariant, counts, offenders, fault windows."""
        lines = [f"verdict: {self.status.upper()} ({self.ops} ops, "
                 + ("drained" if self.drained else "no completed drain") + ")"]
        for r in self.results.values():
            if r.violated or (r.examples and r.name in ("recovered", "parked")):
                lines.append(f"{r.name}: {r.status} - {r.invariant}; {_counts(r.counts)}"
                             + (f" ({r.note})" if r.note else ""))
                for o in r.examples:
                    where = f" during faults {', '.join(o.windows)}" if o.windows else ""
                    lines.append(f"  {o.id}{where}" + (f" ({o.detail})" if o.detail else ""))
        late = self.results.get("late")
        if late is not None and late.measures.get("p50_s") is not None:
            m = late.measures
            lines.append(f"latency: p50 {m['p50_s']:.3f}s p99 {m['p99_s']:.3f}s "
                         f"max {m['max_s']:.3f}s over {late.counts['measured']} messages")
        if self.windows:
            lines.append("fault windows: " + "; ".join(
                f"{w.step} {w.fault} {self._span(w)}" for w in self.windows[:10])
                + (f"; ... {len(self.windows) - 10} more" if len(self.windows) > 10 else ""))
        return "\n".join(lines)

    def _span(self, w: FaultWindow) -> str:
        end = "open" if w.end is None else f"{(w.end - self.origin) / NS:.2f}s"
        return f"[{(w.start - self.origin) / NS:.2f}s..{end}]"

    def _window_dict(self, w: FaultWindow) -> dict[str, Any]:
        return {"step": w.step, "fault": w.fault, "targets": list(w.targets),
                "params": dict(w.params), "start_s": (w.start - self.origin) / NS,
                "end_s": None if w.end is None else (w.end - self.origin) / NS}


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def check(history: History | Iterable[Op], *, late_bound_s: float = LATE_BOUND_S,
          health_bound_s: float = HEALTH_BOUND_S, max_unavailable: float | None = None) -> Verdict:
    """Run every checker; invalid if any invariant is violated, else unknown if any is undecided."""
    history = as_history(history)
    options = {"late": {"late_bound_s": late_bound_s}, "health": {"bound_s": health_bound_s},
               "availability": {"max_unavailable": max_unavailable}}
    with gc_paused():
        facts = facts_of(history)
        results = {name: checker(history, **options.get(name, {})) for name, checker in CHECKERS.items()}
    statuses = {r.status for r in results.values()}
    status: Status = ("invalid" if "invalid" in statuses
                      else "unknown" if "unknown" in statuses else "valid")
    return Verdict(status, results, facts.windows, facts.ops, facts.origin,
                   facts.drained_at is not None)


def check_file(path: str | Path, out: TextIO | None = None, json_out: str | Path | None = None,
               *, late_bound_s: float = LATE_BOUND_S) -> int:
    """Load and check a history file, print the summary; 0 valid, 1 invalid, 2 unknown.

    A missing or malformed file raises HarnessError.
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"no history file at {path}")
    verdict = check(load_with_facts(path), late_bound_s=late_bound_s)
    print(verdict.summary(), file=out or sys.stdout)
    if json_out is not None:
        try:
            Path(json_out).write_text(verdict.to_json() + "\n", encoding="utf-8")
        except OSError as e:
            raise HarnessError(f"cannot write verdict to {json_out}: {e.strerror}") from None
    return verdict.exit_code
