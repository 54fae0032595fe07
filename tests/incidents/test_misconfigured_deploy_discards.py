"""Misconfigured deploy: the API answered 2xx while the queue silently discarded every message.

The packaged incident `misrouted-deploy` (harness/incidents/, its story there), bound to the reference app by
the session stack's file (x-chaos.incidents).
"""

import pytest

from tests.incidents.catalog import run_incident

pytestmark = pytest.mark.chaos

INCIDENT = "misrouted-deploy"


def test_vulnerable(chaos_stack, chaos_run, chaos_check):
    run_incident(INCIDENT, "vulnerable", chaos_stack, chaos_run, chaos_check)


def test_hardened(chaos_stack, chaos_run, chaos_check):
    run_incident(INCIDENT, "hardened", chaos_stack, chaos_run, chaos_check)
