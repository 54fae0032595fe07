"""Generated fault schedules: the search finds the sender-deploy incident on its own, and nothing when hardened.

The search draws schedules from the whole (short-run) fault registry; it is told nothing about the
incident beyond the deploy. Also here: the test that `pytest --chaos-replay FILE` runs.
"""

import sys

import pytest

from harness.scenario import load_scenario, run_scenario
from harness.schedule import Schedule
from harness.search import search
from tests.incidents.catalog import workers_with


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")


@pytest.mark.chaos
def test_search_finds_and_shrinks_reject_drop(chaos_stack, chaos_report_dir, chaos_seed, chaos_profile):
    found = search(chaos_stack, chaos_report_dir / "search-reject-drop",
                   deploy=workers_with(chaos_stack, ["worker-reject-drop"]),
                   profile=chaos_profile, seed=chaos_seed, progress=_say)
    assert found.failure is not None, found.summary()
    assert len(Schedule.from_data(found.failure.scenario.schedule).steps) <= 2, found.summary()
    replayed = run_scenario(chaos_stack, load_scenario(found.scenario_file), chaos_report_dir, seed=chaos_seed,
                            progress=_say)
    assert replayed.status == found.failure.status, replayed.verdict.summary()
    assert replayed.violations() == found.failure.violations(), replayed.verdict.summary()


@pytest.mark.chaos
def test_search_finds_nothing_when_hardened(chaos_stack, chaos_report_dir, chaos_seed, chaos_profile):
    found = search(chaos_stack, chaos_report_dir / "search-hardened", deploy={}, profile=chaos_profile,
                   seed=chaos_seed, progress=_say)
    assert found.failure is None, found.summary()
    assert found.runs, found.summary()


@pytest.mark.chaos
@pytest.mark.chaos_replay
def test_replay(chaos_replay_file, chaos_run, chaos_check):
    """Runs only under `pytest --chaos-replay FILE`."""
    chaos_check(chaos_run(load_scenario(chaos_replay_file)))
