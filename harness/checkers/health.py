"""Health tells the truth: no service answers healthy for more than `bound_s` while it makes no progress
that work is waiting for, outside fault windows.

The ops it reads (recorded by `harness.healthwatch` during the run):
- health: process = node, type ok (healthy) / fail / info (no answer), value = {"role", "serves"?};
- backlog: process "broker", type ok, value = {"messages": ready messages in the app's queues};
- deliver ops (value.worker: who delivered), and the sends' invokes and acknowledgements.

Who is judged, and on what progress:
- a node whose health value says `serves: requests` (the node the workload sends to) stalls while
  requests are being made (an invoke within the last second) and none is acknowledged;
- a node of a role that delivered anything in the run stalls while the app's queues hold ready messages
  and it delivers nothing: the worker that consumes nothing while its queue is not empty.
Time inside a fault window does not count (a fault may stop progress; the claim is judged once it
heals), nor does time between two probes that are not both healthy.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from harness.checkers.facts import NS, facts_of
from harness.checkers.result import CheckResult, Offender
from harness.history import History, Op, as_history

HEALTH_BOUND_S = 10.0
DEMAND_S = 1.0  # a request keeps the API busy for this long after its invoke
INVARIANT = "no service answers healthy for longer than {bound:g}s while it makes no progress that work waits for"

Spans = list[tuple[int, int]]


def _union(spans: Iterable[tuple[int, int]]) -> Spans:
    out: Spans = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _measure(a: int, b: int, busy: Spans, quiet: Spans) -> int:
    """How long, within [a, b], `busy` holds and `quiet` (fault windows) does not."""
    total = 0
    i = max(0, bisect.bisect_right(busy, (a, a)) - 1)
    while i < len(busy) and busy[i][0] < b:
        lo, hi = max(a, busy[i][0]), min(b, busy[i][1])
        if hi > lo:
            total += hi - lo - _overlap(lo, hi, quiet)
        i += 1
    return total


def _overlap(a: int, b: int, spans: Spans) -> int:
    return sum(max(0, min(b, hi) - max(a, lo)) for lo, hi in spans if lo < b and hi > a)


def check_health(history: History | Iterable[Op], bound_s: float = HEALTH_BOUND_S) -> CheckResult:
    history = as_history(history)
    facts = facts_of(history)
    probes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    role_of: dict[str, str] = {}
    serves: dict[str, str] = {}
    backlog: list[tuple[int, int | None]] = []
    delivered: dict[str, list[int]] = defaultdict(list)
    for process, type_, f, value, t in zip(history.process, history.type, history.f, history.value, history.time):
        if f == "health":
            probes[process].append((t, type_))
            if isinstance(value, dict):
                role_of[process] = value.get("role", process)
                if value.get("serves"):
                    serves[process] = value["serves"]
        elif f == "backlog":
            backlog.append((t, value.get("messages") if type_ == "ok" and isinstance(value, dict) else None))
        elif f == "deliver" and type_ == "ok" and isinstance(value, dict) and value.get("worker"):
            delivered[str(value["worker"])].append(t)
    bound = round(bound_s * NS)
    if not probes:
        return CheckResult("health", "valid", INVARIANT.format(bound=bound_s), {"nodes": 0, "probes": 0, "stalls": 0},
                           note="no service health was recorded")
    quiet = _union((w.start, w.end if w.end is not None else facts.end) for w in facts.windows)
    backlog.sort(key=lambda s: s[0])
    waiting = _union((t, backlog[i + 1][0] if i + 1 < len(backlog) else facts.end)
                     for i, (t, n) in enumerate(backlog) if n)
    demand = _union((t, t + round(DEMAND_S * NS)) for t in facts.invoked.values())
    acks = sorted(facts.acked.values())
    consumers = {role_of.get(w, w) for w in delivered}
    stalls: list[tuple[int, str, int, int]] = []  # (stalled ns, node, from, to)
    judged = 0
    for node, seen in probes.items():
        if serves.get(node) == "requests":
            progress, busy = acks, demand
        elif role_of.get(node) in consumers:
            progress, busy = sorted(delivered.get(node, ())), waiting
        else:
            continue
        judged += 1
        seen.sort(key=lambda p: p[0])
        run_start = last_ok = None
        for t, outcome in seen:  # runs of consecutive healthy answers, each judged on its own
            if outcome == "ok":
                run_start = t if run_start is None else run_start
                last_ok = t
            elif run_start is not None:
                stalls += _stalls(node, run_start, last_ok, progress, busy, quiet, bound)
                run_start = None
        if run_start is not None:
            stalls += _stalls(node, run_start, last_ok, progress, busy, quiet, bound)
    stalls.sort(key=lambda s: (s[2], s[1]))
    origin = facts.origin
    examples = tuple(
        Offender(node, facts.windows_around(a, b),
                 f"healthy for {(b - a) / NS:.1f}s from {(a - origin) / NS:.1f}s with no "
                 + ("request acknowledged while requests came" if serves.get(node) == "requests"
                    else "delivery while the queues held messages")
                 + f" ({stalled / NS:.1f}s of it outside fault windows)")
        for stalled, node, a, b in stalls[:10])
    return CheckResult(
        "health", "invalid" if stalls else "valid", INVARIANT.format(bound=bound_s),
        {"nodes": judged, "probes": sum(len(p) for p in probes.values()), "stalls": len(stalls)},
        examples, {"bound_s": bound_s, "longest_stall_s": max((s[0] for s in stalls), default=0) / NS},
        ids=frozenset(s[1] for s in stalls))


def _stalls(node: str, start: int, end: int, progress: list[int], busy: Spans, quiet: Spans,
            bound: int) -> list[tuple[int, str, int, int]]:
    """Gaps between this node's progress within one healthy run that busy time fills beyond the bound."""
    lo, hi = bisect.bisect_left(progress, start), bisect.bisect_right(progress, end)
    marks = [start] + progress[lo:hi] + [end]
    out = []
    for a, b in zip(marks, marks[1:]):
        if b - a > bound:
            stalled = _measure(a, b, busy, quiet)
            if stalled > bound:
                out.append((stalled, node, a, b))
    return out
