"""Deploys stop services the way orchestrators do, so a hardened stack under rolling deploys loses and
duplicates nothing.

Stress: under load (messages and campaigns), 5 rolling deploys of the sender workers (each rolls the
group forward, then back: 10 rolls, 20 worker containers replaced), 2 deploys of the API (4 API
containers replaced) and a rolling deploy of both schedulers (leader hand-offs). Every old container
must exit on its own after SIGTERM, within its grace: exit code 0 or 143, never killed (137).
"""

import pytest

from harness.scenario import Scenario, WorkloadSpec
from harness.stops import stopped_containers

pytestmark = pytest.mark.chaos

GRACE_S = 10
ROLLS = 5


def schedule() -> list[dict]:
    steps = [{"at": 2 + 18 * i, "fault": "rolling-deploy", "targets": ["workers"], "duration": 8,
              "params": {"env": {"DEPLOY_VERSION": f"v{i + 2}"}, "gap": 0.5, "grace": GRACE_S}}
             for i in range(ROLLS)]
    steps += [{"at": at, "fault": "deploy", "targets": ["api"], "duration": 3,
               "params": {"env": {"DEPLOY_VERSION": f"api-{at}"}, "grace": GRACE_S}} for at in (12, 48)]
    steps.append({"at": 30, "fault": "rolling-deploy", "targets": ["scheduler"], "duration": 8,
                  "params": {"env": {"DEPLOY_VERSION": "sched-2"}, "gap": 0.5, "grace": GRACE_S}})
    return steps


def test_rolling_deploys_under_load_lose_and_duplicate_nothing(chaos_run, chaos_check):
    result = chaos_run(Scenario(
        name="deploy-stress", schedule=schedule(),
        workload=WorkloadSpec(clients=4, rate=25.0, duration_s=18 * ROLLS + 4, campaign_share=0.05,
                              campaign_size=10),
        drain_s=40.0))
    chaos_check(result)  # valid: nothing lost, duplicated, unexpected, late or stuck
    stopped = stopped_containers(result.report_dir / "history.jsonl")
    workers = [end for fault, node, end in stopped if node.startswith("worker")]
    api = [end for fault, node, end in stopped if node == "api"]
    schedulers = [end for fault, node, end in stopped if node.startswith("scheduler")]
    assert len(workers) >= 4 * ROLLS, f"{len(workers)} worker containers replaced"
    assert len(api) >= 3, f"{len(api)} API containers replaced"
    assert len(schedulers) >= 2, f"{len(schedulers)} scheduler containers replaced"
    bad = [(fault, node, end) for fault, node, end in stopped
           if end["killed"] or end["exit_code"] not in (0, 143) or end["seconds"] > GRACE_S]
    assert not bad, f"containers that did not stop on SIGTERM within {GRACE_S}s: {bad}"
