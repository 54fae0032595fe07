"""Misconfigured deploy: the API answered 2xx while the queue silently discarded every message.

Incident: a deploy broke the API-to-queue link (wrong routing); the API published without confirms
or the mandatory flag, kept answering 2xx, and every message was discarded for 2.5 hours.
Fault: mid-load, the API is redeployed with the misrouted routing key.
Invariant: no message the API acknowledged is lost (a refusal is honest; a 2xx that loses is not).
"""

import pytest

from tests.incidents.catalog import scenario

pytestmark = pytest.mark.chaos


def deploy_step(switches: list[str]) -> list[dict]:
    return [{"at": 6, "fault": "deploy", "targets": ["api"],
             "params": {"env": {"DISPATCH_ROUTING_KEY": "messages"}, "switches": switches}, "duration": 20}]


def test_vulnerable(chaos_run, chaos_check):
    result = chaos_run(scenario("misrouted-deploy-vulnerable", deploy_step(["api-fire-and-forget"])))
    chaos_check(result, expect={"lost"})


def test_hardened(chaos_run, chaos_check):
    chaos_check(chaos_run(scenario("misrouted-deploy-hardened", deploy_step([]))))
