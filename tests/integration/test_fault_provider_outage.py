"""`provider-outage` seen from outside: the sink refuses deliveries while it is injected, accepts after heal."""

from __future__ import annotations

import pytest
import requests

from faults.base import FaultContext, get_fault
from stack.stack import Stack

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def stack():
    with Stack("small") as s:
        yield s


def deliver(stack: Stack, message_id: str) -> int:
    url = f"http://127.0.0.1:{stack.host_port('sink', 8080)}/deliver"
    return requests.post(url, json={"id": message_id, "worker": "test", "attempt": 1}, timeout=10).status_code


def delivered_ids(stack: Stack) -> set[str]:
    url = f"http://127.0.0.1:{stack.host_port('sink', 8080)}/deliveries?offset=0&limit=1000"
    return {d["id"] for d in requests.get(url, timeout=10).json()["deliveries"]}


def test_outage_refuses_every_delivery_then_heals(stack):
    fault = get_fault("provider-outage")(FaultContext(stack, step="t-outage"), [], {"fail_rate": 1.0})
    effect = fault.inject()
    assert effect.targets == ("sink",)
    assert [deliver(stack, f"outage-{i}") for i in range(5)] == [503] * 5
    fault.heal()
    assert deliver(stack, "after-heal") == 200
    ids = delivered_ids(stack)
    assert "after-heal" in ids and not any(i.startswith("outage-") for i in ids)


def test_outage_rate_is_validated():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="fail_rate"):
        get_fault("provider-outage").check_params({"fail_rate": 1.5}, "step 1")


def test_a_deployed_version_that_cannot_start_is_said_and_judged(stack, tmp_path):
    """The scenario is told nothing about which versions may not start: a deployed node that exits
    instead of becoming ready is said in the progress, the run goes on, and the invariants judge it
    (small has one worker: with it gone, accepted messages are never delivered)."""
    from harness.scenario import Scenario, WorkloadSpec, run_scenario

    lines: list[str] = []
    scenario = Scenario(name="crash-on-start", deploy={"worker1": {"CHAOS_SWITCHES": "worker-crash-on-start"}},
                        workload=WorkloadSpec(clients=2, rate=10, duration_s=3), drain_s=3, late_bound_s=2)
    result = run_scenario(stack, scenario, tmp_path, progress=lines.append)
    said = [line for line in lines if "worker1 exited instead of becoming ready" in line]
    assert said and "exit code 1" in said[0], lines
    assert result.status == "invalid" and "lost" in result.violations(), result.verdict.results
    assert stack.container("worker1").status == "exited"
