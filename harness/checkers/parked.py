"""Parked: messages dead-lettered for replay. Not lost and not a violation, but listed."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checkers.facts import facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

INVARIANT = "(report) messages parked in the dead-letter queue"


def check_parked(history: History | Iterable[Op]) -> CheckResult:
    facts = facts_of(history)
    parked = facts.parked
    replayed = {m for m in parked if m in facts.deliveries}   # the few parked ones
    examples = tuple(
        Offender(m, facts.windows_around(facts.invoked.get(m, parked[m]), parked[m]),
                 "parked, later delivered" if m in replayed else "parked")
        for m in first(parked, parked.__getitem__))
    return CheckResult(
        "parked", "valid", INVARIANT,
        {"parked": len(parked), "acknowledged": sum(1 for m in parked if m in facts.acked),
         "delivered": len(replayed)},
        examples, ids=frozenset(parked))
