"""Broker cluster dropping connections while services hung instead of reconnecting.

Incident: the RabbitMQ cluster kept dropping client connections; the sender workers had no heartbeat
and no reconnect, hung, and their health checks still said ok, so nothing surfaced the errors.
Fault: the workers' links to every RabbitMQ node go down for 6 s, then come back.
Invariant: every accepted message is delivered once the links are back (no loss, nothing stuck).
"""

import pytest

from tests.incidents.catalog import scenario, workers_with

pytestmark = pytest.mark.chaos

SCHEDULE = [{"at": 8, "fault": "link-down", "targets": ["workers:rabbitmq"], "duration": 6}]


def test_vulnerable(chaos_stack, chaos_run, chaos_check):
    result = chaos_run(scenario("broker-drops-vulnerable", SCHEDULE,
                                workers_with(chaos_stack, ["broker-no-recovery"])))
    chaos_check(result, expect={"lost"})


def test_hardened(chaos_run, chaos_check):
    chaos_check(chaos_run(scenario("broker-drops-hardened", SCHEDULE)))
