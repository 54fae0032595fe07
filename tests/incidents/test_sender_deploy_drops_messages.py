"""Sender-worker deploy that broke: messages delayed, some rejected and dropped instead of parked.

Incident: a new sender-worker version went out; when the provider failed a delivery it rejected the
message without requeue or dead-lettering, so those messages were gone (the rest were delayed and
replayed a day later by hand).
Fault: a rolling deploy of the workers, then a provider outage failing 40% of deliveries for 8 s.
Invariant: no accepted message is lost: a failed delivery is retried or parked, never dropped.
"""

import pytest

from tests.incidents.catalog import scenario

pytestmark = pytest.mark.chaos


def schedule(switches: list[str]) -> list[dict]:
    return [{"at": 4, "fault": "rolling-deploy", "targets": ["workers"],
             "params": {"switches": switches, "gap": 1.0}, "duration": 22},
            {"at": 12, "fault": "provider-outage", "params": {"fail_rate": 0.4}, "duration": 8}]


def test_vulnerable(chaos_run, chaos_check):
    result = chaos_run(scenario("sender-deploy-vulnerable", schedule(["worker-reject-drop"])))
    chaos_check(result, expect={"lost"})


def test_hardened(chaos_run, chaos_check):
    chaos_check(chaos_run(scenario("sender-deploy-hardened", schedule([]))))
