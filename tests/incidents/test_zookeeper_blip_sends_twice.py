"""ZooKeeper network blip that left the messaging cluster incoherent and sent twice.

Incident: a network blip cost the campaign scheduler its ZooKeeper session; it kept fanning out while
a new leader took over from stale progress, and ids were not derived from (campaign, recipient), so
re-submitted sends "will certainly be sent twice".
Fault: the leading scheduler's ZooKeeper links go down for longer than its session timeout.
Invariant: each campaign recipient gets exactly the one message whose id the campaign promised.
"""

import pytest

from harness.scenario import WorkloadSpec
from tests.incidents.catalog import scenario

pytestmark = pytest.mark.chaos

WORKLOAD = WorkloadSpec(clients=4, rate=20.0, duration_s=30.0, campaign_share=0.3, campaign_size=20)
SCHEDULE = [{"at": 6, "fault": "link-down", "targets": ["scheduler:zookeeper"], "duration": 14}]


def test_vulnerable(chaos_run, chaos_check):
    result = chaos_run(scenario("zk-blip-vulnerable", SCHEDULE,
                                {"scheduler": {"CHAOS_SWITCHES": "zk-unfenced-fanout"},
                                 "scheduler2": {"CHAOS_SWITCHES": "zk-unfenced-fanout"}}, WORKLOAD))
    chaos_check(result, expect={"unexpected"})


def test_hardened(chaos_run, chaos_check):
    chaos_check(chaos_run(scenario("zk-blip-hardened", SCHEDULE, workload=WORKLOAD)))
