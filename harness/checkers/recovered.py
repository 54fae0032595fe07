"""Recovered: sends whose outcome was info (unknown) or fail, yet delivered. Reported only."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checkers.facts import facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

INVARIANT = "(report) unknown or refused sends that were delivered anyway"


def check_recovered(history: History | Iterable[Op]) -> CheckResult:
    facts = facts_of(history)
    outcome = facts.uncertain
    recovered = {m for m in outcome if m in facts.deliveries}   # the few uncertain ones
    of_fail = sum(1 for m in recovered if outcome[m] == "fail")
    examples = tuple(
        Offender(m, facts.windows_around(facts.invoked[m], facts.first_delivery[m]),
                 f"outcome {outcome[m]}, delivered")
        for m in first(recovered, facts.invoked.__getitem__))
    return CheckResult(
        "recovered", "valid", INVARIANT,
        {"unknown_outcome": sum(1 for o in outcome.values() if o == "info"),
         "refused": sum(1 for o in outcome.values() if o == "fail"),
         "recovered": len(recovered), "recovered_unknown": len(recovered) - of_fail,
         "recovered_refused": of_fail},
        examples, ids=frozenset(recovered))
