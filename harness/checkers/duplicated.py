"""Duplicated: a message delivered more than once (by message id) is a violation here."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checkers.facts import facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

INVARIANT = "no message is delivered more than once"


def check_duplicated(history: History | Iterable[Op]) -> CheckResult:
    facts = facts_of(history)
    repeated = facts.repeated
    extra = sum(len(ds) - 1 for ds in repeated.values())

    def order(m: str) -> int:
        return facts.invoked.get(m, facts.first_delivery[m])

    examples = tuple(
        Offender(m, facts.windows_around(order(m), facts.last_delivery(m)),
                 f"delivered {len(repeated[m])}x: "
                 + ", ".join(f"{d.worker}#{d.attempt}" for d in repeated[m][:5]))
        for m in first(repeated, order))
    return CheckResult(
        "duplicated", "invalid" if repeated else "valid", INVARIANT,
        {"delivered": len(facts.deliveries), "duplicated": len(repeated),
         "extra_deliveries": extra},
        examples, ids=frozenset(repeated))
