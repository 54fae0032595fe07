"""Schedules as values: round trips, files, and one clear line for each mistake (no Docker)."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.schedule import Schedule, Step

EXAMPLE = {
    "name": "mixed",
    "steps": [
        {"at": 0, "fault": "partition", "targets": ["rabbitmq"], "params": {"grouping": "isolate", "node": "rmq1"},
         "duration": 20},
        {"at": 5, "fault": "latency", "targets": ["workers:redis-primary"],
         "params": {"latency": 300, "jitter": 50, "direction": "both"}, "duration": 10},
        {"at": 8, "fault": "redis-failover", "params": {"method": "kill"}, "duration": 15},
        {"at": 9, "fault": "kill", "targets": ["any:zk-followers"], "duration": 0},
        {"at": 9, "fault": "deploy", "targets": ["worker1"], "params": {"switches": ["slow-ack"]}},
        {"at": 9, "fault": "rabbitmq-leader-stop", "params": {"queue": "dispatch.messages"}, "duration": 5},
    ],
}


def test_round_trip_through_data_json_and_yaml(tmp_path):
    schedule = Schedule.from_data(EXAMPLE)
    assert Schedule.from_data(schedule.to_data()) == schedule
    for suffix in (".json", ".yaml"):
        path = schedule.save(tmp_path / f"s{suffix}")
        assert Schedule.load(path) == schedule
    assert schedule.steps[1] == Step(5.0, "latency", ("workers:redis-primary",),
                                     {"latency": 300, "jitter": 50, "direction": "both"}, 10.0)
    assert schedule.length == 23.0


def one_line_error(tmp_path, steps, suffix=".yaml") -> str:
    path = tmp_path / f"bad{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"steps": steps}))
    else:
        import yaml
        path.write_text(yaml.safe_dump({"steps": steps}))
    with pytest.raises(HarnessError) as info:
        Schedule.load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_typo_in_fault_name_is_named_with_a_suggestion(tmp_path):
    message = one_line_error(tmp_path, [{"at": 0, "fault": "kill", "targets": ["rmq1"]},
                                        {"at": 1, "fault": "redis-failovr", "duration": 5}])
    assert message.endswith("step 2: unknown fault 'redis-failovr' (did you mean 'redis-failover'?)")
    assert str(tmp_path) in message


def test_unknown_target_is_named(tmp_path):
    message = one_line_error(tmp_path, [{"at": 0, "fault": "pause", "targets": ["rabbitmq-leader"]}],
                             suffix=".json")
    assert message.endswith("step 1: unknown target 'rabbitmq-leader'") or \
        "step 1: unknown target 'rabbitmq-leader' (did you mean" in message


def test_unknown_node_and_link_targets(tmp_path):
    assert "step 1: unknown target 'rmq9'" in one_line_error(
        tmp_path, [{"fault": "kill", "targets": ["rmq9"]}])
    assert "step 1: unknown target 'wrokers-redis1'" in one_line_error(
        tmp_path, [{"fault": "latency", "targets": ["wrokers-redis1"]}])


@pytest.mark.parametrize("step, expected", [
    ({"fault": "latency", "targets": ["workers"], "params": {"latncy": 5}},
     "step 1: unknown parameter 'latncy' for fault 'latency' (did you mean 'latency'?)"),
    ({"fault": "latency", "targets": ["workers"], "params": {"latency": "slow"}},
     "step 1: parameter 'latency' must be int, not str 'slow'"),
    ({"fault": "latency", "targets": ["workers"], "params": {"direction": "sideways"}},
     "step 1: parameter 'direction' must be one of downstream, upstream, both, not 'sideways'"),
    ({"fault": "kill"}, "step 1: fault 'kill' needs targets"),
    ({"fault": "zk-leader-kill", "targets": ["zk1"]}, "step 1: fault 'zk-leader-kill' picks its own target"),
    ({"fault": "kill", "targets": ["rmq1"], "duraton": 3}, "step 1: unknown key 'duraton' (did you mean 'duration'?)"),
    ({"fault": "kill", "targets": ["rmq1"], "at": -1}, "step 1: 'at' must be a non-negative number"),
    ({"fault": "partition", "targets": ["zk"], "params": {"grouping": "groups"}},
     "step 1: grouping 'groups' needs parameter 'groups'"),
])
def test_each_mistake_is_one_line(step, expected):
    with pytest.raises(HarnessError) as info:
        Schedule.from_data([step])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_file_that_does_not_parse(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("steps: [\n")
    with pytest.raises(HarnessError, match="does not parse"):
        Schedule.load(path)


def test_every_registered_fault_describes_itself_as_plain_data():
    from faults.base import describe_all

    described = describe_all()
    json.dumps(described)
    names = {d["name"] for d in described}
    assert {"kill", "restart", "pause", "rolling-restart", "partition", "latency", "bandwidth", "timeout",
            "reset-peer", "slow-close", "slicer", "limit-data", "link-down", "redis-failover",
            "rabbitmq-leader-stop", "zk-leader-kill", "deploy", "rolling-deploy", "rollback"} <= names


def test_partition_groupings_are_jepsen_like():
    import random

    from faults.partition import grudge

    nodes = ["n1", "n2", "n3", "n4", "n5"]
    rng = random.Random(0)
    iso = grudge(nodes, "isolate", ["n3"], [], rng)
    assert iso["n3"] == {"n1", "n2", "n4", "n5"} and iso["n1"] == {"n3"}
    mm = grudge(nodes, "majority-minority", [], [], rng)
    minority = [n for n in nodes if len(mm[n]) == 3]
    assert len(minority) == 2
    bridge = grudge(nodes, "bridge", ["n3"], [], rng)
    assert bridge["n3"] == set() and all(len(bridge[n]) == 2 for n in nodes if n != "n3")
    ring = grudge(nodes, "majorities-ring", [], [], rng)
    assert all(len(ring[n]) == 2 for n in nodes)  # each sees itself and 2 others: a majority of 5
    assert len({frozenset(set(nodes) - ring[n]) for n in nodes}) == 5
    groups = grudge(nodes, "groups", [], [["n1"], ["n2", "n3"]], rng)
    assert groups["n1"] == {"n2", "n3", "n4", "n5"} and groups["n4"] == {"n1", "n2", "n3"}
