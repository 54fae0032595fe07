"""Sender-worker deploy that broke: messages delayed, some rejected and dropped instead of parked.

The packaged incident `sender-deploy` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

pytestmark = pytest.mark.chaos

INCIDENT = "sender-deploy"


def test_vulnerable(chaos_incident):
    chaos_incident(INCIDENT, "vulnerable")


def test_hardened(chaos_incident):
    chaos_incident(INCIDENT, "hardened")
