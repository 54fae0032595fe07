"""ZooKeeper network blip that left the messaging cluster incoherent and sent twice.

The packaged incident `zk-blip` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

pytestmark = pytest.mark.chaos

INCIDENT = "zk-blip"


def test_vulnerable(chaos_incident):
    chaos_incident(INCIDENT, "vulnerable")


def test_hardened(chaos_incident):
    chaos_incident(INCIDENT, "hardened")
