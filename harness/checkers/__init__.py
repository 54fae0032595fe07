"""Offline checkers: pure functions of a history, one invariant per module, found by name.

Compose them with `harness.verdict.check`.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.checkers.duplicated import check_duplicated
from harness.checkers.facts import Facts, FaultWindow, facts_of
from harness.checkers.late import LATE_BOUND_S, check_late
from harness.checkers.lost import check_lost
from harness.checkers.parked import check_parked
from harness.checkers.recovered import check_recovered
from harness.checkers.result import CheckResult, Offender, Status
from harness.checkers.unexpected import check_unexpected

#: name -> checker, in report order. `late` also takes `late_bound_s`.
CHECKERS: dict[str, Callable[..., CheckResult]] = {
    "lost": check_lost,
    "duplicated": check_duplicated,
    "unexpected": check_unexpected,
    "late": check_late,
    "recovered": check_recovered,
    "parked": check_parked,
}

__all__ = ["CHECKERS", "LATE_BOUND_S", "CheckResult", "Facts", "FaultWindow", "Offender",
           "Status", "check_duplicated", "check_late", "check_lost", "check_parked",
           "check_recovered", "check_unexpected", "facts_of"]
