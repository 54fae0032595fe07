"""The search remembers its failure: the next search with the same key runs the saved failure first.

The runs are stand-ins (no Docker): a schedule "fails" when it holds a `kill` step, so the search's own
logic (Hypothesis, memo, shrink bound, saved failure) is what is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import search as search_module
from harness.scenario import RunResult
from harness.schedule import Schedule
from harness.search import Profile, saved_failure_path, search
from stack.topology import RunParams, build_topology

PROFILE = Profile("unit", max_examples=60, shrink_seconds=30.0)
FAULTS = ["provider-outage", "kill"]


@dataclass(frozen=True)
class FakeResult:
    status: str

    def summary(self) -> str:
        return f"verdict: {self.status}"


class FakeStack:
    def __init__(self) -> None:
        self.topology = build_topology("small", RunParams(run_id="unit", cookie="x", with_services=True))


def has_kill(schedule: Schedule) -> bool:
    return any(s.fault == "kill" for s in schedule.steps)


class Runs(list):
    """Every schedule the search ran, in order; `failing` decides the verdicts."""

    failing = staticmethod(has_kill)


@pytest.fixture
def runs(monkeypatch) -> Runs:
    ran = Runs()

    def fake_run(stack, scenario, root, *, seed=0, progress=None):
        schedule = Schedule.from_data(scenario.schedule)
        ran.append(schedule)
        bad = ran.failing(schedule)
        results = {"lost": FakeResult("invalid" if bad else "valid")}
        verdict = type("V", (), {"status": "invalid" if bad else "valid", "results": results,
                                 "summary": lambda self: "fake verdict"})()
        return RunResult(scenario, verdict, Path(root), 0.0, [], {})

    monkeypatch.setattr(search_module, "run_scenario", fake_run)
    return ran


def test_a_failed_search_runs_its_saved_failure_first(tmp_path, runs):
    first = search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3)
    assert first.failure is not None and first.replayed is None
    shrunk = Schedule.from_data(first.failure.scenario.schedule)
    assert [s.fault for s in shrunk.steps] == ["kill"]
    assert saved_failure_path(tmp_path, "small", {}, FAULTS, "unit", 3).exists()
    ran_before = len(runs)

    again = search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3)
    assert runs[ran_before] == shrunk  # the first run of the new search is the saved failure
    assert again.replayed == shrunk
    assert again.failure is not None and Schedule.from_data(again.failure.scenario.schedule) == shrunk
    assert len(runs) == ran_before + 1  # found at once: nothing generated, nothing to shrink


def test_another_key_does_not_replay_it(tmp_path, runs):
    search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3)
    other = search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=4)
    assert other.replayed is None


def test_a_saved_failure_that_passes_now_is_forgotten(tmp_path, runs):
    search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3)
    path = saved_failure_path(tmp_path, "small", {}, FAULTS, "unit", 3)
    runs.failing = lambda schedule: False  # the bug is fixed
    ran_before = len(runs)
    fixed = search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3)
    assert fixed.failure is None and fixed.replayed is not None
    assert runs[ran_before] == fixed.replayed  # still tried first ...
    assert len(runs) > ran_before + 1  # ... then the search generated as usual
    assert not path.exists()


def test_a_corrupt_saved_failure_is_ignored(tmp_path, runs):
    path = saved_failure_path(tmp_path, "small", {}, FAULTS, "unit", 3)
    path.parent.mkdir(parents=True)
    path.write_text('{"steps": [{"at": 0, "fault": "no-such-fault"}]}')
    lines: list[str] = []
    found = search(FakeStack(), tmp_path, faults=FAULTS, profile=PROFILE, seed=3, progress=lines.append)
    assert found.replayed is None and found.failure is not None
    assert any("ignoring saved failure" in line for line in lines)


def test_shrinking_stops_running_schedules_after_its_bound(tmp_path, runs):
    found = search(FakeStack(), tmp_path, faults=FAULTS,
                   profile=Profile("unit", max_examples=60, shrink_seconds=0.0), seed=3)
    assert found.failure is not None
    # With no shrink time, only schedules run before the first failure (and that failure) ran.
    first_failure = next(i for i, s in enumerate(runs) if has_kill(s))
    assert len(runs) == first_failure + 1
