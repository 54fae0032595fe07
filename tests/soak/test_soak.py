"""The nightly soak: a nemesis package over a long run on the hardened reference stack, the workload
running all along, judged at the end (not in the default test paths: run it by hand or nightly).

    pytest tests/soak --chaos-soak-duration 30m --chaos-seed 7 -o log_cli=true
"""

import pytest

from harness.soak import DEFAULT_FAULTS

pytestmark = [pytest.mark.chaos, pytest.mark.soak]


def test_soak_hardened(chaos_soak, chaos_check):
    result = chaos_soak(faults=DEFAULT_FAULTS)
    assert len({w.fault for w in result.verdict.windows}) >= min(6, len(DEFAULT_FAULTS)), result.verdict.summary()
    chaos_check(result)
