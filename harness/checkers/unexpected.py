"""Unexpected: a message delivered that no client ever tried to send."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checkers.facts import facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

INVARIANT = "every delivered message was sent"


def check_unexpected(history: History | Iterable[Op]) -> CheckResult:
    facts = facts_of(history)
    unexpected = facts.delivered_uninvoked()
    examples = tuple(
        Offender(m, facts.windows_around(facts.first_delivery[m], facts.last_delivery(m)),
                 "delivered, never sent")
        for m in first(unexpected, facts.first_delivery.get))
    return CheckResult(
        "unexpected", "invalid" if unexpected else "valid", INVARIANT,
        {"delivered": len(facts.deliveries), "unexpected": len(unexpected)},
        examples, ids=frozenset(unexpected))
