"""Redis failover that stranded sends for an hour.

The packaged incident `redis-failover` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

pytestmark = pytest.mark.chaos

INCIDENT = "redis-failover"


def test_vulnerable(chaos_incident):
    chaos_incident(INCIDENT, "vulnerable")


def test_hardened(chaos_incident):
    chaos_incident(INCIDENT, "hardened")
