"""The hardened workers deliver at least once: a worker SIGKILLed between the provider's acceptance and
its de-dup mark sends that message twice, and the harness must say so (and lose nothing).

The window is as wide as the provider's answer is slow: with 300 ms of latency on the workers' link
to the provider (its answers, downstream), a worker spends nearly all its time with a delivery
accepted but not yet marked, and the load keeps both workers busy, so each of the four SIGKILLs lands
in the window with a probability near 0.97.
"""

import pytest

from harness.scenario import Scenario, WorkloadSpec

pytestmark = pytest.mark.chaos


def schedule() -> list[dict]:
    steps = [{"at": 3, "fault": "latency", "targets": ["workers-sink"], "duration": 22,
              "params": {"latency": 300, "direction": "downstream"}}]
    steps += [{"at": at, "fault": "kill", "targets": [node], "duration": 2}
              for at, node in ((8, "worker1"), (12, "worker2"), (16, "worker1"), (20, "worker2"))]
    return steps


def test_sigkilled_workers_send_twice_and_the_harness_reports_it(chaos_run, chaos_check):
    result = chaos_run(Scenario(
        name="at-least-once", schedule=schedule(),
        workload=WorkloadSpec(clients=2, rate=8.0, duration_s=26.0), drain_s=40.0, late_bound_s=40.0))
    chaos_check(result, expect={"duplicated"})
    found = result.violations()
    assert not found & {"lost", "unexpected"}, result.verdict.summary()
    duplicated = result.verdict.results["duplicated"]
    assert duplicated.status == "invalid", result.verdict.summary()
