"""Facts the checkers share, derived once per history: per-message outcomes, deliveries,
parking, fault windows and the drain. Pure: a function of the history alone."""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import eq, itemgetter, not_, or_
from typing import Any

from harness.errors import HarnessError
from harness.history import History, Op, as_history, gc_paused

NS = 1_000_000_000
_UNCERTAIN = frozenset({"fail", "info"})
_delivered_id = itemgetter("id")


@dataclass(frozen=True)
class FaultWindow:
    """From a fault's inject invoke to its heal's ok/info; `end` None: never healed."""

    step: str
    fault: str
    start: int
    end: int | None
    targets: tuple = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)


@dataclass(frozen=True)
class Delivery:
    time: int
    worker: Any
    attempt: Any


@dataclass(frozen=True)
class Facts:
    ops: int
    origin: int                      # time of the earliest op
    end: int                         # time of the latest op
    invoked: Mapping[str, int]       # message id -> its send/campaign invoke time
    acked: Mapping[str, int]         # message id -> time its send/campaign was acknowledged
    uncertain: Mapping[str, str]     # never acknowledged: id -> info | fail (no completion: info)
    deliveries: Counter              # message id -> number of deliveries
    first_delivery: Mapping[str, int]
    repeated: Mapping[str, tuple[Delivery, ...]]  # ids delivered more than once, in time order
    parked: Mapping[str, int]        # message id -> time it was seen parked
    windows: tuple[FaultWindow, ...]
    drain_started: int | None
    drained_at: int | None           # time of the drain's ok: None if the drain never completed

    def last_delivery(self, m: str) -> int:
        ds = self.repeated.get(m)
        return ds[-1].time if ds else self.first_delivery[m]

    def windows_around(self, start: int, end: int) -> tuple[str, ...]:
        """Steps of the fault windows open at some point of [start, end]."""
        return tuple(w.step for w in self.windows if w.overlaps(start, end))


_cache: weakref.WeakKeyDictionary[History, Facts] = weakref.WeakKeyDictionary()


def facts_of(ops: History | Iterable[Op]) -> Facts:
    """The facts of a history (cached per loaded `History`)."""
    history = as_history(ops)
    facts = _cache.get(history)
    if facts is None:
        with gc_paused():
            facts = _cache[history] = _derive(history)
    return facts


# The bulk of a history is send and deliver ops: they are selected at C speed through masks
# (lists of bools, one per op) rather than by a Python loop over every op.

def _mask(history: History, f: str) -> list[bool]:
    return list(map(eq, history.f, repeat(f)))


def _selected(column: list, mask: list[bool]) -> list:
    return list(compress(column, mask))


def _first_index(history: History, f: str, bad: Callable[[Any], bool]) -> int:
    return next(i for i, (f_, v) in enumerate(zip(history.f, history.value)) if f_ == f and bad(v))


def _derive(h: History) -> Facts:
    sends, deliveries = _mask(h, "send"), _mask(h, "deliver")
    invoked: dict[str, int] = {}
    acked: dict[str, int] = {}
    refused: set[str] = set()     # ids with a fail completion
    unknown: set[str] = set()     # ids with an info completion
    _sends(h, sends, invoked, acked, refused, unknown)

    parked: dict[str, int] = {}
    windows: list[FaultWindow] = []
    open_windows: dict[str, list[int]] = {}  # step -> indices of its unhealed windows
    drain: dict[str, int] = {}
    others = compress(range(len(h)), map(not_, map(or_, sends, deliveries)))
    for i in others:
        f, type_, value, t = h.f[i], h.type[i], h.value[i], h.time[i]
        if f == "campaign":
            _campaign(i, type_, value, t, invoked, acked, refused, unknown)
        elif f == "park":
            if type_ == "ok":
                parked.setdefault(_message_id(i, value), t)
        elif f == "fault":
            _fault(i, type_, value, t, windows, open_windows)
        elif f == "drain":
            if type_ in ("invoke", "ok"):
                drain.setdefault(type_, t)

    # not acknowledged: info unless refused and never answered "unknown" (ok > info > fail)
    uncertain = dict.fromkeys(invoked.keys() - acked.keys(), "info")
    uncertain.update(dict.fromkeys((refused - unknown) & uncertain.keys(), "fail"))
    counts, first_d, repeated = _deliveries(h, deliveries)
    times = h.time
    return Facts(
        ops=len(h), origin=min(times, default=0), end=max(times, default=0),
        invoked=invoked, acked=acked, uncertain=uncertain,
        deliveries=counts, first_delivery=first_d, repeated=repeated,
        parked=parked, windows=tuple(windows),
        drain_started=drain.get("invoke"), drained_at=drain.get("ok"))


def _sends(h: History, mask: list[bool], invoked: dict, acked: dict, refused: set,
           unknown: set) -> None:
    types, ids, times = _selected(h.type, mask), _selected(h.value, mask), _selected(h.time, mask)
    if not set(map(type, ids)) <= {str}:
        bad = _first_index(h, "send", lambda v: not isinstance(v, str))
        raise HarnessError(f"history op {bad + 1}: a send's value must be a message id string")

    def earliest(kind: str) -> Iterable[tuple[str, int]]:
        # fed to a dict in reverse, so when an id is invoked or acknowledged twice the
        # earliest time wins
        return compress(zip(reversed(ids), reversed(times)), map(eq, reversed(types), repeat(kind)))

    invoked.update(earliest("invoke"))
    acked.update(earliest("ok"))
    for m, type_ in compress(zip(ids, types), map(_UNCERTAIN.__contains__, types)):
        (refused if type_ == "fail" else unknown).add(m)


def _campaign(i: int, type_: str, value: Any, t: int, invoked: dict, acked: dict,
              refused: set, unknown: set) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("ids", []), list):
        raise HarnessError(f"history op {i + 1}: a campaign's value must be "
                           '{"campaign": id, "ids": [message ids]}')
    ids = value.get("ids", [])
    for m in ids:
        invoked.setdefault(m, t)
    if type_ == "ok":
        for m in ids:
            acked.setdefault(m, t)
    elif type_ == "fail":
        refused.update(ids)
    elif type_ == "info":
        unknown.update(ids)


def _message_id(i: int, value: Any) -> str:
    if not isinstance(value, str):
        raise HarnessError(f"history op {i + 1}: a park's value must be a message id string")
    return value


def _fault(i: int, type_: str, value: Any, t: int,
           windows: list[FaultWindow], open_windows: dict[str, list[int]]) -> None:
    if not isinstance(value, dict) or value.get("action") not in ("inject", "heal"):
        raise HarnessError(f"history op {i + 1}: a fault's value must be "
                           '{"action": "inject"|"heal", "step": ..., "fault": ...}')
    step = str(value.get("step"))
    if value["action"] == "inject":
        if type_ == "invoke":
            open_windows.setdefault(step, []).append(len(windows))
            windows.append(FaultWindow(step, str(value.get("fault", "?")), t, None,
                                       tuple(value.get("targets") or ()),
                                       dict(value.get("params") or {})))
    elif type_ in ("ok", "info") and open_windows.get(step):
        k = open_windows[step].pop()
        w = windows[k]
        windows[k] = FaultWindow(w.step, w.fault, w.start, t, w.targets, w.params)


def _deliveries(h: History, mask: list[bool]) -> tuple[Counter, dict, dict]:
    values, times = _selected(h.value, mask), _selected(h.time, mask)
    try:
        ids = list(map(_delivered_id, values))
    except (KeyError, TypeError):
        bad = _first_index(h, "deliver", lambda v: not isinstance(v, dict) or "id" not in v)
        raise HarnessError(f"history op {bad + 1}: a deliver's value must be "
                           '{"id": ..., "worker": ..., "attempt": ...}') from None
    counts = Counter(ids)
    first = dict(zip(ids, times))
    repeated: dict[str, list[Delivery]] = {}
    if len(counts) != len(ids):
        many = {m for m, c in counts.items() if c > 1}
        for m, v, t in compress(zip(ids, values, times), map(many.__contains__, ids)):
            repeated.setdefault(m, []).append(Delivery(t, v.get("worker"), v.get("attempt")))
        for m, ds in repeated.items():
            # deliver ops may be out of time order: the earliest is the first delivery
            ds.sort(key=lambda d: d.time)
            first[m] = ds[0].time
    return counts, first, {m: tuple(ds) for m, ds in repeated.items()}
