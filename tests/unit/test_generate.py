"""The schedule strategy: what it draws validates, and it shrinks to the simplest schedule."""

import random

import pytest
from hypothesis import HealthCheck, find, given, settings

from harness.generate import MAX_AT_S, MAX_DURATION_S, MAX_STEPS, drop_steps, fault_names, schedules
from harness.schedule import Schedule
from stack.topology import RunParams, build_topology


def topology(name: str):
    return build_topology(name, RunParams(run_id="unit", cookie="x", with_services=True))


@pytest.mark.parametrize("name", ["default", "small"])
def test_generated_schedules_validate(name):
    from faults.base import get_fault

    topo = topology(name)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(schedules(topo))
    def check(schedule):
        assert 1 <= len(schedule.steps) <= MAX_STEPS
        assert all(get_fault(s.fault).short for s in schedule.steps)  # the short search: short faults
        assert schedule.length <= MAX_AT_S + MAX_DURATION_S
        # The value round-trips through a schedule file's data and validates against the topology.
        assert Schedule.from_data(schedule.to_data(), topo) == schedule

    check()


def test_simplest_schedule_is_one_mild_short_step():
    found = find(schedules(topology("default")), lambda s: True, settings=settings(database=None),
                 random=random.Random(0))
    assert found.to_data() == {"steps": [{"at": 0.0, "fault": fault_names()[0], "duration": 2.0}]}


def test_shrinks_to_a_minimal_failing_schedule():
    # "Fails" when some link step adds more than 1.5 s of latency: the minimal such step is a latency
    # step at 0 s, for 2 s, on the first link, with only that parameter changed.
    def fails(schedule):
        return any(s.fault == "latency" and s.params.get("latency", 1000) > 1500 for s in schedule.steps)

    found = find(schedules(topology("default")), fails, settings=settings(database=None, max_examples=2000),
                 random=random.Random(0))
    culprit = {"at": 0.0, "fault": "latency", "targets": ["api-rmq1"], "params": {"latency": 1501}, "duration": 2.0}
    simplest = {"at": 0.0, "fault": fault_names()[0], "duration": 2.0}
    steps = found.to_data()["steps"]
    # Hypothesis now and then keeps simplest steps in front of the culprit, never anything else ...
    assert culprit in steps and all(step in (culprit, simplest) for step in steps), steps
    # ... and the search's step-dropping pass removes them.
    assert drop_steps(found, fails).to_data()["steps"] == [culprit]


def test_drop_steps_keeps_every_needed_step_and_the_order():
    topo = topology("small")
    needed = {"kill", "provider-outage"}
    schedule = Schedule.from_data({"steps": [
        {"at": 0, "fault": "provider-outage", "duration": 2},
        {"at": 1, "fault": "provider-outage", "duration": 3},
        {"at": 2, "fault": "kill", "targets": ["worker1"], "duration": 2},
        {"at": 3, "fault": "provider-outage", "duration": 4}]}, topo)
    calls = []

    def fails(s):
        calls.append(s)
        return needed <= {step.fault for step in s.steps}

    dropped = drop_steps(schedule, fails)
    # Front to back: both early outages go, the kill and the last outage (now needed) stay, in order.
    assert [(s.fault, s.at) for s in dropped.steps] == [("kill", 2.0), ("provider-outage", 3.0)]
    assert len(calls) == len(schedule.steps)  # one try per step
    # Nothing to drop: the same object back.
    assert drop_steps(dropped, fails) is dropped


def test_shrinks_two_needed_steps_to_two():
    def fails(schedule):
        return {"kill", "provider-outage"} <= {s.fault for s in schedule.steps}

    # Hypothesis's shrink now and then keeps a redundant simplest step (seen: outage, outage, kill, once
    # a fresh example database recorded that shrink); the search's step-dropping pass removes it, so
    # the two needed steps at their simplest are what a user gets.
    # A fixed random source: the same search every run (once, under load, a random one ended in a
    # Hypothesis error instead of an example; a test must not depend on that luck).
    found = find(schedules(topology("small")), fails, settings=settings(max_examples=2000, database=None),
                 random=random.Random(0))
    simplest = {("provider-outage", 0.0, 2.0), ("kill", 0.0, 2.0)}
    assert {(s.fault, s.at, s.duration) for s in found.steps} == simplest, found
    assert all(s.params == {} for s in found.steps), found
    assert [(s.fault, s.at, s.duration, s.params) for s in drop_steps(found, fails).steps] == [
        ("provider-outage", 0.0, 2.0, {}), ("kill", 0.0, 2.0, {})]


def test_unknown_fault_is_one_error():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="unknown fault 'nope'"):
        schedules(topology("small"), ["nope"])


def test_each_numeric_parameter_declares_its_unit_and_searches_within_its_bounds():
    from faults.base import load_all

    for name, fault in load_all().items():
        for p in fault.params:
            if p.type not in (int, float):
                continue
            assert p.unit, f"{name}.{p.name} has no unit"
            low, high = p.bounds
            if p.search is not None:
                assert (low is None or low <= p.search[0]) and (high is None or p.search[1] <= high), (name, p)
            if p.default is not None:
                assert (low is None or low <= p.default) and (high is None or p.default <= high), (name, p)


def test_slicer_delay_is_microseconds_and_slow_close_delay_milliseconds():
    from faults.base import get_fault

    def delay(fault):
        return next(p for p in get_fault(fault).describe()["params"] if p["name"] == "delay")

    assert delay("slicer")["unit"] == "µs" and delay("slow-close")["unit"] == "ms"


@pytest.mark.parametrize("fault, params, message", [
    ("latency", {"toxicity": 1.5}, "parameter 'toxicity' must be within 0..1 (fraction), not 1.5"),
    ("provider-outage", {"fail_rate": -0.1}, "parameter 'fail_rate' must be within 0..1 (fraction), not -0.1"),
    ("latency", {"latency": -5}, "parameter 'latency' must be at least 0 (ms), not -5"),
    ("restart", {"grace": 601}, "parameter 'grace' must be within 0..600 (s), not 601"),
])
def test_a_value_out_of_bounds_is_refused_with_its_unit(fault, params, message):
    from faults.base import get_fault
    from harness.errors import HarnessError

    with pytest.raises(HarnessError) as caught:
        get_fault(fault).check_params(params, "step 1")
    assert str(caught.value) == f"step 1: {message}"


def test_drawn_parameters_keep_to_the_declared_search_range():
    from faults.base import get_fault
    from harness.generate import param_value

    for fault in ("slicer", "latency", "provider-outage"):
        for p in get_fault(fault).params:
            if p.search is None:
                continue

            @settings(max_examples=60, deadline=None)
            @given(param_value(p))
            def check(value):
                assert value == p.default or p.search[0] <= value <= p.search[1]

            check()
