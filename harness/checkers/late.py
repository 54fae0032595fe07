"""Latency from acknowledgement to first delivery, and late messages: delivered more than
`late_bound_s` after the later of their acknowledgement and the heal of the last fault
window that overlapped their pending time (send invoke .. first delivery)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from itertools import repeat

from harness.checkers.facts import NS, Facts, facts_of
from harness.checkers.result import CheckResult, Offender, first
from harness.history import History, Op

LATE_BOUND_S = 30.0


def check_late(history: History | Iterable[Op], late_bound_s: float = LATE_BOUND_S) -> CheckResult:
    facts = facts_of(history)
    acked, first_d = facts.acked, facts.first_delivery
    latencies = facts.latencies()   # sorted
    bound = round(late_bound_s * NS)
    late = {}
    if latencies and latencies[-1] > bound:
        for m in facts.slower_than(bound):
            reference = late_reference(facts, m)
            if reference is not None and first_d[m] - reference > bound:
                late[m] = reference
    # a delivery seen before the HTTP answer arrived has zero latency from the client's view
    early = bisect.bisect_left(latencies, 0)
    latencies[:early] = repeat(0, early)
    examples = tuple(
        Offender(m, facts.windows_around(facts.invoked.get(m, acked[m]), first_d[m]),
                 f"delivered {(first_d[m] - late[m]) / NS:.1f}s after "
                 + ("its acknowledgement" if late[m] == acked[m] else "the last heal"))
        for m in first(late, facts.invoked.get))
    return CheckResult(
        "late", "invalid" if late else "valid",
        f"every message is delivered within {late_bound_s:g}s of its acknowledgement "
        "or of the heal of the faults it waited through",
        {"measured": len(latencies), "late": len(late)},
        examples,
        {"p50_s": _percentile(latencies, 0.50), "p99_s": _percentile(latencies, 0.99),
         "max_s": latencies[-1] / NS if latencies else None, "late_bound_s": late_bound_s},
        ids=frozenset(late))


def late_reference(facts: Facts, m: str) -> int | None:
    """When message m's delivery clock starts; None while a fault it waited through is unhealed."""
    start, delivered = facts.invoked.get(m, facts.acked[m]), facts.first_delivery[m]
    reference = facts.acked[m]
    for w in facts.windows:
        if w.overlaps(start, delivered):
            if w.end is None:
                return None
            reference = max(reference, w.end)
    return reference


def _percentile(ordered: list[int], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / NS
