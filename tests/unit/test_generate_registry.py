"""Generated schedules over the whole registry (the nightly shape): every fault is drawn, every schedule
validates against the shipped stack files, and what a fault gets fits it (no Docker; deterministic)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from faults.base import get_fault, load_all
from harness.generate import group_targets, schedules
from harness.schedule import Schedule
from harness.search import PROFILES
from stack.kinds import kind_of
from stack.topology import RunParams, build_topology

NIGHTLY = PROFILES["nightly"]
CI = PROFILES["ci"]


def topology(name: str):
    # build_topology reads the shipped stack file stack/stacks/<name>.yaml
    return build_topology(name, RunParams(run_id="unit", cookie="x", with_services=True))


def deterministic(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def test_the_nightly_profile_is_longer_and_the_ci_profile_as_short_as_before():
    assert (NIGHTLY.max_steps, NIGHTLY.max_at_s + NIGHTLY.max_duration_s, NIGHTLY.long_faults) == (10, 60, True)
    assert NIGHTLY.workload.duration_s >= 60
    assert (CI.max_steps, CI.max_at_s, CI.max_duration_s, CI.long_faults) == (3, 8, 8, False)
    assert CI.workload.duration_s == 10.0 and CI.max_examples == 5


@pytest.mark.parametrize("name", ["default", "small"])
def test_nightly_schedules_draw_every_fault_and_validate_against_the_stack_file(name):
    topo = topology(name)
    seen: dict[str, int] = {}
    lengths = []

    @deterministic(400)
    @given(NIGHTLY.schedules(topo))
    def check(schedule):
        assert 1 <= len(schedule.steps) <= 10 and schedule.length <= 60
        assert Schedule.from_data(schedule.to_data(), topo) == schedule  # validates, round-trips
        lengths.append(len(schedule.steps))
        for step in schedule.steps:
            seen[step.fault] = seen.get(step.fault, 0) + 1

    check()
    assert set(seen) == set(load_all()), sorted(set(load_all()) - set(seen))
    assert max(lengths) > 3  # longer than the ci shape


def test_the_nightly_search_targets_with_modes_too():
    from harness.generate import mode_targets

    assert mode_targets(topology("default")) == ["minority:rabbitmq", "minority:zookeeper", "minority:sentinel",
                                                 "one:primaries"]
    assert mode_targets(topology("small")) == ["one:primaries"]
    targets = set()

    @deterministic(300)
    @given(NIGHTLY.schedules(topology("default"), ["kill", "pause"]))
    def check(schedule):
        targets.update(t for s in schedule.steps for t in s.targets)

    check()
    assert {"minority:rabbitmq", "one:primaries"} <= targets


def test_ci_schedules_keep_to_short_faults():
    topo = topology("default")
    seen = set()

    @deterministic(200)
    @given(CI.schedules(topo))
    def check(schedule):
        assert len(schedule.steps) <= 3 and schedule.length <= 16
        seen.update(s.fault for s in schedule.steps)

    check()
    assert seen and all(get_fault(f).short for f in seen)
    assert {"partition", "rolling-restart", "deploy", "rolling-deploy", "rollback"}.isdisjoint(seen)


@pytest.mark.parametrize("name", ["default", "small"])
def test_what_each_fault_gets_fits_it(name):
    topo = topology(name)
    groups = set(group_targets(topo))
    groupings = set()

    @deterministic(300)
    @given(schedules(topo, ["partition", "rolling-restart", "rolling-deploy", "deploy", "rollback", "latency",
                            "slicer", "slow-close"], max_steps=6, max_at=45, max_duration=15))
    def check(schedule):
        for step in schedule.steps:
            fault = get_fault(step.fault)
            checked = fault.check_params(step.params, "step")  # within each Param's bounds
            for p in fault.params:
                if p.search is not None and p.name in step.params:
                    assert p.search[0] <= step.params[p.name] <= p.search[1], (step, p)
            if fault.acts_on_groups:
                assert len(step.targets) == 1 and step.targets[0] in groups, step
                assert len(topo.names(step.targets[0])) >= 2
            if step.fault == "partition":
                groupings.add(checked["grouping"])
            if fault.replaces_containers:  # never a broker's, ZooKeeper's or Redis's disk
                assert all(kind_of(n.role).service for t in step.targets for n in topo.nodes
                           if n.name == t or n.role == t), step
            if step.fault in ("deploy", "rolling-deploy"):
                # A redeploy with the configuration unchanged: no incident switch, no env.
                assert checked["switches"] is None and checked["env"] is None, step
        # A rollback rolls back the latest deploy in effect before it; with none it is not drawn.
        for i, step in enumerate(schedule.steps):
            if step.fault != "rollback":
                continue
            before = [s for j, s in enumerate(schedule.steps) if s.fault in ("deploy", "rolling-deploy")
                      and (s.at, j) < (step.at, i) and (s.heal_at is None or s.heal_at > step.at)]
            assert before, f"a rollback with no deploy to roll back: {schedule}"
            latest = max(before, key=lambda s: (s.at, schedule.steps.index(s)))
            assert step.targets == latest.targets, schedule

    check()
    # Groupings fit the targets: on the small stack (groups of 2) only those two nodes can serve.
    assert groupings >= {"isolate", "halves"}
    if name == "small":
        assert groupings <= {"isolate", "halves"}
    else:
        assert "majority-minority" in groupings or "bridge" in groupings


def test_a_partition_grouping_the_targets_are_too_few_for_is_refused():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="step 1: grouping 'bridge' needs at least 3 target nodes, "
                                           r"the targets \['redis'\] have 2"):
        Schedule.from_data([{"fault": "partition", "targets": ["redis"], "params": {"grouping": "bridge"}}],
                           topology("small"))
    Schedule.from_data([{"fault": "partition", "targets": ["rabbitmq"], "params": {"grouping": "bridge"}}],
                       topology("default"))


def test_clock_skew_is_drawn_only_on_nodes_that_opt_in():
    """x-clock: true on Redis in the shipped stacks (and the API and workers in default): generated
    clock-skew steps aim there alone, and a stack with no such node draws none."""
    from dataclasses import replace

    from faults.base import get_fault
    from harness.errors import HarnessError
    from harness.generate import fits, target_pool
    from stack.model import load_stack_file, shipped_stack
    from stack.topology import RunParams

    fault = get_fault("clock-skew")
    small = load_stack_file(shipped_stack("small"), RunParams(run_id="u", cookie="c"))
    pool = target_pool(fault, small, long_faults=True)
    assert pool and set(pool) <= {"redis1", "redis2", "redis-primary", "redis-replica", "redis", "one:redis",
                                  "minority:redis", "all:redis"}, pool
    assert "redis1" in pool and "sentinel1" not in pool and "primaries" not in pool
    default = load_stack_file(shipped_stack("default"), RunParams(run_id="u", cookie="c"))
    assert {"api", "worker1", "worker2"} <= set(target_pool(fault, default))
    assert fits("clock-skew", small)
    plain = replace(small, nodes=tuple(replace(n, clock=False) for n in small.nodes))
    assert not fits("clock-skew", plain)
    with pytest.raises(HarnessError, match="no node of this stack opts in"):
        fault.check_topology({}, plain, "step 1")
    with pytest.raises(HarnessError, match="sentinel1 may be targeted but does not opt in"):
        fault.check_targets(["sentinel1"], {}, small, "step 1")
    with pytest.raises(HarnessError, match="zk1 may be targeted"):
        fault.check_targets(["primaries"], {}, small, "step 1")


def test_rabbitmq_alarm_is_drawn_on_brokers_only():
    """The nightly search drew rabbitmq-alarm on `api` (a step that then took no effect): the fault now
    says which targets it serves, and generated steps aim only there."""
    from faults.base import get_fault
    from harness.errors import HarnessError
    from harness.generate import target_pool
    from stack.model import load_stack_file, shipped_stack

    fault = get_fault("rabbitmq-alarm")
    default = load_stack_file(shipped_stack("default"), RunParams(run_id="u", cookie="c"))
    pool = target_pool(fault, default, long_faults=True)
    assert pool and "rmq1" in pool and not {"api", "worker1", "redis1", "primaries"} & set(pool), pool
    with pytest.raises(HarnessError, match="api may be targeted but is not a RabbitMQ node"):
        fault.check_targets(["api"], {}, default, "step 3")
