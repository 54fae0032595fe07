"""Broker cluster dropping connections while services hung instead of reconnecting.

The packaged incident `broker-drops` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

from tests.incidents.catalog import run_incident

pytestmark = pytest.mark.chaos

INCIDENT = "broker-drops"


def test_vulnerable(chaos_stack, chaos_run, chaos_check):
    run_incident(INCIDENT, "vulnerable", chaos_stack, chaos_run, chaos_check)


def test_hardened(chaos_stack, chaos_run, chaos_check):
    run_incident(INCIDENT, "hardened", chaos_stack, chaos_run, chaos_check)
