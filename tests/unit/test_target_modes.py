"""Target modes (`one:`, `minority:`, `majority:`, `all:`, `percent:N:`) and `primaries`: how many they pick,
that one seed picks the same, that the history says whom, and one line for each bad mode (no Docker)."""

from __future__ import annotations

import pytest

from faults import roles
from faults.base import FAULTS, FaultContext, get_fault, register
from faults.modes import Mode, split
from faults.nodes import NodeFault
from harness.errors import HarnessError
from harness.history import HistoryWriter, load_history
from harness.runner import Runner
from harness.schedule import Schedule
from stack.topology import RunParams, build_topology


def topology(name: str):
    return build_topology(name, RunParams(run_id="unit", cookie="x", with_services=True))


class FakeStack:
    """What resolution needs of a stack: its topology and its seed (static targets ask no container)."""

    def __init__(self, name: str = "default", seed: int = 0) -> None:
        self.topology = topology(name)
        self.seed = seed


def resolve(target: str, seed: object = 0, name: str = "default", picks=None) -> list[str]:
    return roles.resolve_nodes(FakeStack(name), [target], seed=seed, picks=picks)


@pytest.mark.parametrize("mode, counts", [
    # n = 0, 1, ..., 6
    ("one", [0, 1, 1, 1, 1, 1, 1]),
    ("minority", [0, 0, 1, 1, 2, 2, 3]),  # Jepsen: one fewer than a majority
    ("majority", [0, 1, 2, 2, 3, 3, 4]),
    ("all", [0, 1, 2, 3, 4, 5, 6]),
])
def test_each_mode_picks_its_count(mode, counts):
    assert [Mode(mode).count(n) for n in range(7)] == counts


def test_percent_is_rounded_down_as_chaos_mesh_does():
    assert [Mode("percent", 50).count(n) for n in range(1, 6)] == [0, 1, 1, 2, 2]
    assert Mode("percent", 100).count(3) == 3 and Mode("percent", 34).count(3) == 1


@pytest.mark.parametrize("target, count, pool", [
    ("minority:rabbitmq", 1, {"rmq1", "rmq2", "rmq3"}),
    ("majority:rabbitmq", 2, {"rmq1", "rmq2", "rmq3"}),
    ("all:zk", 3, {"zk1", "zk2", "zk3"}),
    ("one:sentinels", 1, {"sentinel1", "sentinel2", "sentinel3"}),
    ("any:workers", 1, {"worker1", "worker2"}),
    ("percent:67:rabbitmq", 2, {"rmq1", "rmq2", "rmq3"}),
    ("minority:redis", 1, {"redis1", "redis2"}),
])
def test_a_mode_over_a_role_picks_that_many_of_it(target, count, pool):
    for seed in range(20):
        picked = resolve(target, seed)
        assert len(picked) == count and set(picked) <= pool, (seed, picked)


def test_the_same_seed_picks_the_same_and_other_seeds_can_differ():
    for target in ("one:rabbitmq", "minority:rabbitmq", "majority:zookeeper", "percent:50:sentinel"):
        assert all(resolve(target, f"{seed}:1") == resolve(target, f"{seed}:1") for seed in range(10))
        assert len({tuple(resolve(target, f"{seed}:1")) for seed in range(30)}) > 1, target
    # The step takes part in the seed: one run's steps do not all pick the same node.
    assert len({tuple(resolve("one:rabbitmq", f"7:{step}")) for step in range(1, 30)}) > 1


def test_picks_are_recorded_with_their_pool():
    picks = []
    picked = resolve("minority:rabbitmq", "3:1", picks=picks)
    assert [p.to_data() for p in picks] == [
        {"target": "minority:rabbitmq", "from": ["rmq1", "rmq2", "rmq3"], "picked": picked}]


def test_a_mode_over_link_targets_picks_links():
    stack = FakeStack("default")
    picks = []
    links = roles.resolve_links(stack, ["one:workers"], seed="0:1", picks=picks)
    assert len(links) == 1 and links[0].group == "workers"
    assert picks[0].to_data()["from"] == [l.name for l in stack.topology.links if l.group == "workers"]
    # A mode inside `<group>:<node target>` picks nodes, then every link of the group to them.
    links = roles.resolve_links(stack, ["workers:majority:rabbitmq"], seed="0:1")
    assert len(links) == 2 and {l.group for l in links} == {"workers"} and {l.node for l in links} < {
        "rmq1", "rmq2", "rmq3"}


def test_primaries_are_the_redis_primary_the_zk_leader_and_the_queue_leaders(monkeypatch):
    monkeypatch.setattr(roles, "redis_primary", lambda stack: "redis2")
    monkeypatch.setattr(roles, "zk_leader", lambda stack: "zk3")
    monkeypatch.setattr(roles, "rabbitmq_queue_leader", lambda stack, queue, avoid=(): "rmq2")
    picks = []
    assert resolve("primaries", picks=picks) == ["rmq2", "zk3", "redis2"]
    assert picks[0].to_data() == {"target": "primaries", "from": ["rmq2", "zk3", "redis2"],
                                  "picked": ["rmq2", "zk3", "redis2"]}
    picks = []
    picked = resolve("minority:primaries", "5:2", picks=picks)
    assert len(picked) == 1 and set(picked) <= {"rmq2", "zk3", "redis2"}
    assert [p.target for p in picks] == ["primaries", "minority:primaries"]


class _Touch(NodeFault):
    """A node fault that only resolves its targets (a test stand-in for kill or pause)."""

    name = "touch-for-test"
    summary = "resolve the targets and touch nothing"

    def inject(self):
        return self.effect(self.resolve())

    def heal(self):
        return self.effect([])


def test_the_history_names_the_picked_nodes(monkeypatch, tmp_path):
    monkeypatch.setitem(FAULTS, _Touch.name, _Touch)
    stack = FakeStack("default", seed=11)
    schedule = Schedule.from_data([{"at": 0, "fault": _Touch.name, "targets": ["minority:zookeeper"],
                                    "duration": 0}], stack.topology)
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        report = Runner(stack, schedule, history).run()
    ok = next(o for o in load_history(tmp_path / "h.jsonl") if o.type == "ok" and o.value["action"] == "inject")
    picked = ok.value["targets"]
    assert len(picked) == 1 and picked[0] in ("zk1", "zk2", "zk3")
    assert ok.value["requested"] == ["minority:zookeeper"]
    assert ok.value["effect"]["picks"] == [{"target": "minority:zookeeper", "from": ["zk1", "zk2", "zk3"],
                                            "picked": picked}]
    assert report.coverage[0]["picks"] == ok.value["effect"]["picks"]
    # Same seed and schedule, same pick (what a replay relies on).
    again = Runner(stack, schedule).run()
    assert again.coverage[0]["targets"] == picked


def test_a_fault_resolves_with_the_runs_seed_and_its_step():
    kill = get_fault("kill")
    picks = [tuple(kill(FaultContext(FakeStack(seed=seed), step="2"), ["one:rabbitmq"], {}).resolve())
             for seed in range(12)]
    assert len(set(picks)) > 1 and all(len(p) == 1 for p in picks)
    assert picks == [tuple(kill(FaultContext(FakeStack(seed=seed), step="2"), ["one:rabbitmq"], {}).resolve())
                     for seed in range(12)]


@pytest.mark.parametrize("topo, step, message", [
    ("default", {"fault": "kill", "targets": ["percent:0:rabbitmq"]},
     "step 1: target 'percent:0:rabbitmq': the percent must be a whole number within 1..100, not '0'"),
    ("default", {"fault": "kill", "targets": ["percent:150:rabbitmq"]},
     "step 1: target 'percent:150:rabbitmq': the percent must be a whole number within 1..100, not '150'"),
    ("default", {"fault": "kill", "targets": ["percent:rabbitmq"]},
     "step 1: target 'percent:rabbitmq': write percent:N:<target>, N within 1..100"),
    ("default", {"fault": "pause", "targets": ["minorty:zk"]},
     "step 1: target 'minorty:zk': unknown target mode 'minorty' (did you mean 'minority'?) "
     "(known: one, minority, majority, all, percent:N)"),
    ("default", {"fault": "latency", "targets": ["some:workers"]},
     "step 1: target 'some:workers': unknown target mode 'some' (known: one, minority, majority, all, percent:N)"),
    ("small", {"fault": "kill", "targets": ["minority:rabbitmq"]},
     "step 1: target 'minority:rabbitmq' picks no node in topology 'small': minority of 1 node is none"),
    ("small", {"fault": "kill", "targets": ["one:zk-followers"]},
     "step 1: target 'one:zk-followers' picks no node in topology 'small': one of 0 nodes is none"),
    ("default", {"fault": "latency", "targets": ["percent:10:workers"]},
     "step 1: target 'percent:10:workers' picks no link in topology 'default': percent:10 of 9 links is none"),
])
def test_a_bad_mode_is_refused_at_validation_in_one_line(topo, step, message):
    with pytest.raises(HarnessError) as caught:
        Schedule.from_data([{"at": 0, "fault": "kill", "targets": ["rmq1"]}, step], topology(topo))
    assert str(caught.value) == message.replace("step 1", "step 2")


def test_primaries_is_refused_where_the_stack_has_none():
    from dataclasses import replace

    topo = topology("small")
    bare = replace(topo, nodes=tuple(n for n in topo.nodes if n.role in ("api", "worker", "sink", "proxy")),
                   app=None)
    with pytest.raises(HarnessError, match="step 1: target 'primaries' picks no node in topology 'small': "
                                           "it resolves to no node"):
        Schedule.from_data([{"fault": "kill", "targets": ["primaries"]}], bare)
    Schedule.from_data([{"fault": "kill", "targets": ["primaries", "one:primaries"]}], topo)


def test_split_leaves_other_targets_alone():
    assert split("workers:redis-primary") is None and split("rabbitmq-queue-leader:q") is None
    assert split("any:rmq") == (Mode("one"), "rmq") and split("percent:5:one:zk") == (Mode("percent", 5), "one:zk")
