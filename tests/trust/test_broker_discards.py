"""A broker that discards is caught even when the app does everything right: on the hardened reference
stack, a drop-head length limit on the work queue while the workers are cut from the broker (so the
queue fills past the limit) silently discards the oldest accepted messages, and the harness must
report exactly those as lost. With reject-publish instead, the broker refuses what it cannot keep, the
hardened API refuses those requests honestly (publisher confirms: a nack), and nothing is lost."""

import pytest

from harness.scenario import Scenario, WorkloadSpec

pytestmark = pytest.mark.chaos


def schedule(overflow: str) -> list[dict]:
    return [{"at": 3, "fault": "queue-limit", "duration": 12,
             "params": {"queues": "^dispatch\\.messages$", "max_length": 5, "overflow": overflow}},
            {"at": 4, "fault": "link-down", "targets": ["workers:rabbitmq"], "duration": 8}]


def run(chaos_run, overflow: str):
    return chaos_run(Scenario(name=f"queue-limit-{overflow}", schedule=schedule(overflow),
                              workload=WorkloadSpec(clients=2, rate=10.0, duration_s=20.0), drain_s=40.0))


def test_drop_head_under_load_is_reported_as_lost(chaos_run, chaos_check):
    result = run(chaos_run, "drop-head")
    chaos_check(result, expect={"lost"})
    lost = result.verdict.results["lost"]
    # about 10 messages a second for 8 s against a limit of 5: tens of them discarded, none elsewhere
    assert lost.counts["lost"] >= 20, result.verdict.summary()
    assert all("1" in o.windows or "2" in o.windows for o in lost.examples), result.verdict.summary()


def test_reject_publish_is_refused_honestly_and_loses_nothing(chaos_run, chaos_check):
    result = run(chaos_run, "reject-publish")
    assert not result.violations() & {"lost", "duplicated", "unexpected"}, result.verdict.summary()
    availability = result.verdict.results["availability"]
    assert availability.counts["fail_inside"] > 0, result.verdict.summary()  # the broker's nacks, refused
