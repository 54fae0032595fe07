"""Broker cluster dropping connections while services hung instead of reconnecting.

The packaged incident `broker-drops` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

pytestmark = pytest.mark.chaos

INCIDENT = "broker-drops"


def test_vulnerable(chaos_incident):
    chaos_incident(INCIDENT, "vulnerable")


def test_hardened(chaos_incident):
    chaos_incident(INCIDENT, "hardened")
