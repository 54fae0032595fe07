"""Redis failover that stranded sends for an hour.

Incident: a Redis primary/replica failover flipped roles; the sender workers kept the old primary's
address and their error callback neither retried nor settled the message, so sends sat stuck.
Fault: a Sentinel failover of the Redis primary under steady load.
Invariant: every accepted message is delivered (no loss, nothing stuck), exactly once.
"""

import pytest

from tests.incidents.catalog import scenario, workers_with

pytestmark = pytest.mark.chaos

SCHEDULE = [{"at": 8, "fault": "redis-failover", "params": {"method": "sentinel"}}]


def test_vulnerable(chaos_stack, chaos_run, chaos_check):
    result = chaos_run(scenario("redis-failover-vulnerable", SCHEDULE,
                                workers_with(chaos_stack, ["redis-sticky-master"])))
    chaos_check(result, expect={"lost"})


def test_hardened(chaos_run, chaos_check):
    chaos_check(chaos_run(scenario("redis-failover-hardened", SCHEDULE)))
