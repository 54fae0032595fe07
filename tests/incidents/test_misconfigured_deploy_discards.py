"""Misconfigured deploy: the API answered 2xx while the queue silently discarded every message.

The packaged incident `misrouted-deploy` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

pytestmark = pytest.mark.chaos

INCIDENT = "misrouted-deploy"


def test_vulnerable(chaos_incident):
    chaos_incident(INCIDENT, "vulnerable")


def test_hardened(chaos_incident):
    chaos_incident(INCIDENT, "hardened")
