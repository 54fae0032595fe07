"""Offline checkers: pure functions of a history, one invariant per module, found by name.

Compose them with `harness.verdict.check`.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.checkers.availability import check_availability
from harness.checkers.duplicated import check_duplicated
from harness.checkers.facts import Facts, FaultWindow, facts_of
from harness.checkers.health import HEALTH_BOUND_S, check_health
from harness.checkers.late import LATE_BOUND_S, check_late
from harness.checkers.lost import check_lost
from harness.checkers.parked import check_parked
from harness.checkers.recovered import check_recovered
from harness.checkers.result import CheckResult, Offender, Status
from harness.checkers.unexpected import check_unexpected

#: name -> checker, in report order. `late` also takes `late_bound_s`, `health` `bound_s`,
#: `availability` `max_unavailable`.
CHECKERS: dict[str, Callable[..., CheckResult]] = {
    "lost": check_lost,
    "duplicated": check_duplicated,
    "unexpected": check_unexpected,
    "late": check_late,
    "recovered": check_recovered,
    "parked": check_parked,
    "health": check_health,
    "availability": check_availability,
}

__all__ = ["CHECKERS", "HEALTH_BOUND_S", "LATE_BOUND_S", "check_availability", "check_health", "CheckResult", "Facts", "FaultWindow", "Offender",
           "Status", "check_duplicated", "check_late", "check_lost", "check_parked",
           "check_recovered", "check_unexpected", "facts_of"]
