"""Lost: acknowledged messages never delivered by the end of the run (parked ones aside).

`stuck` is the sub-category of lost sent while no fault was open and with no later fault:
the stack failed to deliver them while it was healthy."""

from __future__ import annotations

from collections.abc import Iterable

from harness.checkers.facts import Facts, facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

INVARIANT = "every acknowledged message is delivered by the end of the drain"


def check_lost(history: History | Iterable[Op]) -> CheckResult:
    facts = facts_of(history)
    acked = facts.acked
    lost = facts.acked_undelivered() - facts.parked.keys()
    stuck = stuck_ids(facts, lost)
    drained = facts.drained_at is not None
    note = ""
    if not acked:
        status, note = "unknown", "nothing was acknowledged: the run proves nothing"
    elif lost and not drained:
        status, note = "unknown", "no completed drain: the missing ones may still be in flight"
    else:
        status = "invalid" if lost else "valid"
    examples = tuple(
        Offender(m, facts.windows_around(facts.invoked.get(m, acked[m]), facts.end),
                 "stuck: no fault open during or after its send" if m in stuck else "")
        for m in first(lost, facts.invoked.get))
    return CheckResult(
        "lost", status, INVARIANT,
        {"acknowledged": len(acked), "lost": len(lost), "stuck": len(stuck),
         "drained": int(drained)},
        examples, ids=frozenset(lost), note=note)


def stuck_ids(facts: Facts, lost: set[str]) -> set[str]:
    """Lost ids sent after every fault window had closed (and none opened later)."""
    if any(w.end is None for w in facts.windows):
        return set()
    healthy_from = max((w.end for w in facts.windows), default=None)
    if healthy_from is None:
        return set(lost)
    invoked, acked = facts.invoked, facts.acked
    return {m for m in lost if invoked.get(m, acked[m]) > healthy_from}
