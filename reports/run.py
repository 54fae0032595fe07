"""One run's report directory read back from its stored files (history, scenario, coverage,
verdict, run facts), judged again from the history as `check` would."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkers import LATE_BOUND_S
from harness.checkers.facts import Facts, facts_of, load_with_facts
from harness.errors import HarnessError
from harness.history import History
from harness.verdict import Verdict, check

HISTORY = "history.jsonl"
SCENARIO = "scenario.json"
SCHEDULE = "schedule.json"
VERDICT = "verdict.json"
COVERAGE = "coverage.json"
#: written by the pytest plugin: the test id, its incident group and variant, and the seconds it took
RUN_FACTS = "run.json"
REPORT = "report.html"


@dataclass(frozen=True)
class StoredRun:
    """What a report is drawn from."""

    dir: Path
    history: History
    facts: Facts
    verdict: Verdict
    scenario: dict[str, Any] | None
    coverage: list[dict[str, Any]] | None   # the steps that took effect; None: no coverage.json
    stored_status: str | None        # the verdict.json written at the end of the run, if any
    run: dict[str, Any]              # run.json, or {}

    @property
    def name(self) -> str:
        return str(self.run.get("test") or (self.scenario or {}).get("name") or self.dir.name)

    def targets_hit(self) -> dict[str, list[str]] | None:
        """Step -> the nodes or links it hit, for every step that took effect (None: unknown)."""
        if self.coverage is None:
            return None
        return {str(c.get("step")): list(c.get("targets") or []) for c in self.coverage
                if isinstance(c, dict)}

    def violations(self) -> list[str]:
        return [name for name, r in self.verdict.results.items() if r.status == "invalid"]


def is_run_dir(path: Path) -> bool:
    return (path / HISTORY).is_file()


def replay_command(run_dir: Path) -> str:
    return f"chaos-harness replay {shlex.quote(str(Path(run_dir) / SCENARIO))}"


def load_run(run_dir: str | Path) -> StoredRun:
    """Read and re-judge a run directory; HarnessError if it is missing or holds no history."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"no report directory at {run_dir}")
    if not is_run_dir(run_dir):
        raise HarnessError(f"no history file at {run_dir / HISTORY}")
    scenario = _json(run_dir / SCENARIO)
    late_bound_s = (scenario or {}).get("late_bound_s", LATE_BOUND_S)
    history = load_with_facts(run_dir / HISTORY)
    verdict = check(history, late_bound_s=late_bound_s)
    stored = _json(run_dir / VERDICT)
    coverage = _json(run_dir / COVERAGE)
    return StoredRun(run_dir, history, facts_of(history), verdict,
                     scenario if isinstance(scenario, dict) else None,
                     coverage if isinstance(coverage, list) else None,
                     stored.get("status") if isinstance(stored, dict) else None,
                     _json(run_dir / RUN_FACTS) or {})


def _json(path: Path) -> Any:
    """A stored JSON file, None when absent; a corrupt one is a user-visible error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise HarnessError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise HarnessError(f"{path}: not valid JSON: {e}") from None
