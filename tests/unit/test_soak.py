"""Soak schedules: drawn from one seed, windows apart unless asked, every step valid on the stack,
parameters within the faults' declared ranges; bad inputs are one line before anything starts."""

from __future__ import annotations

from collections import Counter

import pytest

from faults.base import get_fault
from harness.errors import HarnessError
from harness.schedule import Schedule
from harness.soak import parse_duration, parse_span, soak_schedule
from stack.topology import RunParams, build_topology

FAULTS = ["partition", "kill", "pause", "latency", "link-down", "redis-failover", "cpu-starve", "dns-fail"]


@pytest.fixture(scope="module")
def topology():
    return build_topology("default", RunParams(run_id="u", cookie="c"))


def test_the_same_seed_draws_the_same_schedule_and_another_seed_another(topology):
    one = soak_schedule(topology, FAULTS, 1800, seed=3)
    assert one == soak_schedule(topology, FAULTS, 1800, seed=3)
    assert one != soak_schedule(topology, FAULTS, 1800, seed=4)


def test_a_half_hour_draws_every_kind_apart_and_valid(topology):
    steps = soak_schedule(topology, FAULTS, 1800, interval=(10, 30), window=(5, 15), seed=3)
    assert set(Counter(s["fault"] for s in steps)) == set(FAULTS)
    Schedule.from_data(steps, topology)  # raises if any step is refused
    for before, after in zip(steps, steps[1:]):
        gap = after["at"] - (before["at"] + before["duration"])
        assert 10 - 0.2 <= gap <= 30 + 0.2, (before, after)
    assert all(5 <= s["duration"] <= 15 for s in steps[:-1]) and steps[-1]["at"] + steps[-1]["duration"] <= 1800
    for s in steps:
        fault = get_fault(s["fault"])
        fault.check_params(s.get("params", {}), "test")  # within bounds
        for name, value in s.get("params", {}).items():
            param = next(p for p in fault.params if p.name == name)
            if param.search is not None and not param.choices:
                assert param.search[0] <= value <= param.search[1]


def test_overlap_counts_from_the_previous_inject(topology):
    steps = soak_schedule(topology, ["latency"], 600, interval=(2, 3), window=(10, 12), seed=1, overlap=True)
    assert any(a["at"] + a["duration"] > b["at"] for a, b in zip(steps, steps[1:]))
    apart = soak_schedule(topology, ["latency"], 600, interval=(2, 3), window=(10, 12), seed=1)
    assert not any(a["at"] + a["duration"] > b["at"] for a, b in zip(apart, apart[1:]))


@pytest.mark.parametrize("call, message", [
    (lambda t: soak_schedule(t, ["nope"], 60), "soak: unknown fault 'nope'"),
    (lambda t: soak_schedule(t, [], 60), "soak: name at least one fault"),
    (lambda t: parse_span("30..10s", "--interval"), "--interval: expected 0 < LOW <= HIGH"),
    (lambda t: parse_duration("2x"), "--duration: expected a duration"),
])
def test_bad_inputs_are_one_line(topology, call, message):
    with pytest.raises(HarnessError, match=message):
        call(topology)


def test_spans_and_durations_read_as_people_write_them():
    assert parse_span("10..30s", "x") == (10, 30) and parse_span("15s", "x") == (15, 15)
    assert parse_duration("2h") == 7200 and parse_duration("30m") == 1800 and parse_duration("90") == 90
