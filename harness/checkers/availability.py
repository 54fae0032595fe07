"""Availability, a measure: the share of requests (sends and campaigns) refused or left unknown, outside
fault windows, inside them, and per fault. A request counts where its invoke falls. It judges nothing
unless given a bound on the share outside fault windows (`max_unavailable`): then a run above it is
invalid, for a test that wants an honest API to stay available when nothing is wrong."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from harness.checkers.facts import facts_of
from harness.checkers.result import CheckResult
from harness.history import History, Op, as_history

INVARIANT = "(measure) the share of requests refused or unknown, outside and inside fault windows"


def check_availability(history: History | Iterable[Op], max_unavailable: float | None = None) -> CheckResult:
    history = as_history(history)
    facts = facts_of(history)
    windows = [(w.start, w.end if w.end is not None else facts.end, w.fault) for w in facts.windows]
    open_: dict[str, int] = {}
    tally: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "ok": 0, "fail": 0, "info": 0})

    def count(invoked: int, outcome: str) -> None:
        faults = {fault for start, end, fault in windows if start <= invoked <= end}
        for where in (["inside"] if faults else ["outside"]) + [f"in {f}" for f in sorted(faults)]:
            tally[where]["requests"] += 1
            tally[where][outcome] += 1

    for process, type_, f, t in zip(history.process, history.type, history.f, history.time):
        if f not in ("send", "campaign"):
            continue
        if type_ == "invoke":
            if process in open_:  # an invoke with no completion: unknown
                count(open_.pop(process), "info")
            open_[process] = t
        elif process in open_:
            count(open_.pop(process), type_ if type_ in ("ok", "fail") else "info")
    for invoked in open_.values():
        count(invoked, "info")

    def share(where: str) -> float | None:
        n = tally[where]["requests"] if where in tally else 0
        return round((tally[where]["fail"] + tally[where]["info"]) / n, 4) if n else None

    outside = share("outside")
    measures = {"unavailable_outside": outside, "unavailable_inside": share("inside")}
    measures.update({f"unavailable_{w.replace(' ', '_')}": share(w) for w in sorted(tally) if w.startswith("in ")})
    if max_unavailable is not None:
        measures["max_unavailable"] = max_unavailable
    counts = {f"{key}_{where}": tally[where][key] for where in ("outside", "inside")
              for key in ("requests", "fail", "info")}
    bad = max_unavailable is not None and outside is not None and outside > max_unavailable
    return CheckResult("availability", "invalid" if bad else "valid", INVARIANT, counts, (), measures,
                       note=f"{outside:.1%} of requests outside fault windows were refused or unknown, above "
                            f"the bound {max_unavailable:.1%}" if bad else "")
