"""Facts the checkers share, derived once per history: per-message outcomes, deliveries,
parking, fault windows and the drain. Pure: a function of the history alone."""

from __future__ import annotations

import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress, islice, repeat
from operator import eq, itemgetter, not_, or_
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.history import History, Op, as_history, gc_paused, load_history, scan_native

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
    deliveries: Mapping[str, int]    # message id -> number of deliveries
    first_delivery: Mapping[str, int]
    repeated: Mapping[str, tuple[Delivery, ...]]  # ids delivered more than once, in time order
    parked: Mapping[str, int]        # message id -> time it was seen parked
    windows: tuple[FaultWindow, ...]
    drain_started: int | None
    drained_at: int | None           # time of the drain's ok: None if the drain never completed
    # the compiled scanner's per-id table behind invoked, acked, deliveries and first_delivery
    # (see _IdMap), which answers the queries below without walking them in Python
    table: Any = field(default=None, compare=False, repr=False)

    # The checkers' queries over every message. With the table they run in Rust; without,
    # over the dicts: the same answers (the tests compare the two).

    def acked_undelivered(self) -> set[str]:
        """Ids acknowledged and never delivered."""
        if self.table is not None:
            return set(self.table.acked_undelivered())
        return self.acked.keys() - self.deliveries.keys()

    def delivered_uninvoked(self) -> set[str]:
        """Ids delivered and never sent (by a send or a campaign)."""
        if self.table is not None:
            return set(self.table.delivered_uninvoked())
        return self.deliveries.keys() - self.invoked.keys()

    def latencies(self) -> list[int]:
        """First delivery - acknowledgement (ns) of every message both acked and delivered,
        sorted."""
        if self.table is not None:
            return self.table.latencies()
        acked = self.acked
        # comprehensions beat map/set pipelines here: one dict probe per delivered message
        return sorted([t - acked[m] for m, t in self.first_delivery.items() if m in acked])

    def slower_than(self, bound: int) -> list[str]:
        """Ids whose first delivery came more than bound ns after their acknowledgement."""
        if self.table is not None:
            return self.table.slower_than(bound)
        acked = self.acked
        return [m for m, t in self.first_delivery.items() if m in acked and t - acked[m] > bound]

    def last_delivery(self, m: str) -> int:
        ds = self.repeated.get(m)
        return ds[-1].time if ds else self.first_delivery[m]

    def windows_around(self, start: int, end: int) -> tuple[str, ...]:
        """Steps of the fault windows open at some point of [start, end]."""
        return tuple(w.step for w in self.windows if w.overlaps(start, end))


class _IdMap(Mapping[str, int]):
    """One column of the compiled scanner's IdTable as a read-only mapping: lookups and len
    go to the table; iterating builds the dict once (the checkers' hot paths only look up)."""

    __slots__ = ("_table", "_column", "_dict")

    def __init__(self, table: Any, column: str) -> None:
        self._table, self._column, self._dict = table, column, None

    def _built(self) -> dict[str, int]:
        if self._dict is None:
            self._dict = self._table.dict(self._column)
        return self._dict

    def __getitem__(self, m: str) -> int:
        value = self._table.get(self._column, m)
        if value is None:
            raise KeyError(m)
        return value

    def get(self, m: str, default: Any = None) -> Any:
        value = self._table.get(self._column, m)
        return default if value is None else value

    def __contains__(self, m: object) -> bool:
        return self._table.get(self._column, m) is not None

    def __len__(self) -> int:
        return self._table.size(self._column)

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def keys(self):  # type: ignore[override] - the dict's own views: fast set operations
        return self._built().keys()

    def items(self):  # type: ignore[override]
        return self._built().items()

    def values(self):  # type: ignore[override]
        return self._built().values()

    def __repr__(self) -> str:
        return f"<{self._column} of {len(self)} ids>"


_cache: weakref.WeakKeyDictionary[History, Facts] = weakref.WeakKeyDictionary()


def facts_of(ops: History | Iterable[Op]) -> Facts:
    """The facts of a history (cached per loaded `History`)."""
    history = as_history(ops)
    facts = _cache.get(history)
    if facts is None:
        with gc_paused():
            builder = FactsBuilder()
            builder.add(history, 0)
            facts = _cache[history] = builder.facts(history)
    return facts


def load_with_facts(path: str | Path) -> History:
    """Load a history and derive its facts in the same pass, block by block while each block
    is still in the CPU cache (several times cheaper than deriving them afterwards from a
    history of millions of ops). What `check_file` uses; `facts_of` then finds them cached.
    A history whose facts cannot be derived loads all the same: `facts_of` raises later.

    Through the compiled scanner when it is built: one native pass reads and checks every op
    and derives the facts of sends, deliveries and campaigns without building the ops (the
    history builds them on first use); the same facts and verdict as the Python path."""
    scanned = scan_native(path, columns=False)
    if scanned is not None:
        history, parts = scanned
        if parts is not None:
            with gc_paused():
                try:
                    _cache[history] = _scanned_facts(history, parts)
                except Exception:  # noqa: BLE001 - re-derived, and raised, by facts_of
                    pass
        return history
    builder = FactsBuilder()
    with gc_paused():
        history = load_history(path, on_block=builder.add)
        try:
            _cache[history] = builder.facts(history)
        except Exception:  # noqa: BLE001 - re-derived, and raised, by facts_of
            pass
    return history


def _scanned_facts(h: History, parts: tuple) -> Facts:
    """Facts from what the compiled scanner derived (see harness/native/src/lib.rs) from the
    sends, deliveries and campaigns; the few other ops (parks, faults, drain) go through
    FactsBuilder as they would on the Python path."""
    origin, end, table, uncertain, repeated_at, others = parts
    builder = FactsBuilder()
    builder._others_of(others)
    return Facts(
        ops=len(h), origin=origin, end=end, invoked=_IdMap(table, "invoked"),
        acked=_IdMap(table, "acked"), uncertain=uncertain,
        deliveries=_IdMap(table, "deliveries"), first_delivery=_IdMap(table, "first_delivery"),
        repeated={m: _in_time_order(ds) for m, ds in repeated_at.items()},
        parked=builder.parked, windows=tuple(builder.windows),
        drain_started=builder.drain.get("invoke"), drained_at=builder.drain.get("ok"),
        table=table)


def _in_time_order(deliveries: Iterable[tuple[int, Any]]) -> tuple[Delivery, ...]:
    """Deliveries, (time, value) in op order, sorted by time."""
    ds = [Delivery(t, v.get("worker"), v.get("attempt")) for t, v in deliveries]
    return tuple(sorted(ds, key=lambda d: d.time))


# The bulk of a history is send and deliver ops: they are selected at C speed through masks
# (lists of bools, one per op) rather than by a Python loop over every op.

def _mask(column: list, f: str) -> list[bool]:
    return list(map(eq, column, repeat(f)))


def _first_index(h: History, start: int, f: str, bad: Callable[[Any], bool]) -> int:
    return next(i for i in range(start, len(h)) if h.f[i] == f and bad(h.value[i]))


def _setdefault_all(d: dict, keys: list, value: Any) -> None:
    """d.setdefault(k, value) for every k of keys, at C speed when none is in d yet."""
    if d.keys().isdisjoint(keys):
        d.update(dict.fromkeys(keys, value))
    else:
        for k in keys:
            d.setdefault(k, value)


def _plus_missing(d: dict, other: dict) -> dict:
    """d, plus the entries of other whose keys d lacks ({**other, **d}, without re-inserting
    every entry of d, the bigger one)."""
    missing = other.keys() - d.keys()
    d.update(zip(missing, map(other.__getitem__, missing)))
    return d


# Errors are raised in the order a whole-history pass raises them: first a bad send, then
# the first bad campaign/park/fault in op order, then a bad delivery.
_SENDS, _OTHERS, _DELIVERIES, _NONE = range(4)


class FactsBuilder:
    """Derives the facts of a history block by block (`add` each block of ops as it is
    appended, then `facts`). Gives the same facts as one pass over the whole history.

    Per block, only C-level passes over the block's columns: the send and deliver ops are
    picked out by masks, their ids made canonical, and the send invokes and oks kept in op
    order; the dicts are built once in `facts` (one insertion per op, the first in op order
    winning), not merged block by block. Deliveries go straight into one dict; a block that
    grows it by less than its deliveries holds a repeat, and only such blocks are looked at
    again, to find the ids repeated."""

    def __init__(self) -> None:
        self.origin: int | None = None
        self.end: int | None = None
        # one object per message id, so that the facts' dicts share keys: comparing them
        # then compares pointers instead of reading strings scattered over the heap
        self.ids: dict[str, str] = {}
        self.invoke_ids: list[str] = []       # send invokes, in op order
        self.invoke_times: list[int] = []
        self.ok_ids: list[str] = []           # send oks, in op order
        self.ok_times: list[int] = []
        self.campaigned: dict[str, int] = {}  # by campaign ops (sends take precedence)
        self.campaign_acked: dict[str, int] = {}
        self.refused: set[str] = set()        # ids with a fail completion
        self.unknown: set[str] = set()        # ids with an info completion
        self.first: dict[str, int] = {}       # last delivery per id until `facts` fixes repeats
        self.delivered_ids: list[str] = []    # in op order
        # (index in delivered_ids of the block's first delivery, block start, block stop)
        self.delivery_blocks: list[tuple[int, int, int]] = []
        self.repeats: set[str] = set()       # ids delivered more than once
        self.parked: dict[str, int] = {}
        self.windows: list[FaultWindow] = []
        self.open_windows: dict[str, list[int]] = {}  # step -> indices of its unhealed windows
        self.drain: dict[str, int] = {}
        self.error: tuple[int, BaseException] | None = None  # (phase, error), first phase wins

    def _shared(self, ids: list[str]) -> list[str]:
        """ids as the one object kept per message id (the first seen)."""
        return list(map(self.ids.setdefault, ids, ids))

    def _fail(self, phase: int, error: BaseException) -> None:
        if self.error is None or phase < self.error[0]:
            self.error = (phase, error)

    def add(self, h: History, start: int) -> None:
        """Take in ops [start, len(h))."""
        stop = len(h)
        if start >= stop:
            return
        times = h.time[start:stop]
        lo, hi = min(times), max(times)
        self.origin = lo if self.origin is None else min(self.origin, lo)
        self.end = hi if self.end is None else max(self.end, hi)
        f = h.f[start:stop]
        sends, deliveries = _mask(f, "send"), _mask(f, "deliver")
        n_sends, n_deliveries = sends.count(True), deliveries.count(True)
        phase = self.error[0] if self.error else _NONE
        if phase > _SENDS and n_sends:
            try:
                self._sends(h, start, sends, times)
            except HarnessError as e:
                self._fail(_SENDS, e)
                return
        if phase > _OTHERS and n_sends + n_deliveries < stop - start:
            try:
                self._others(h, start, sends, deliveries)
            except Exception as e:  # noqa: BLE001 - raised by `facts`, in order
                self._fail(_OTHERS, e)
        if phase > _DELIVERIES and self.error is None and n_deliveries:
            try:
                self._deliveries(h, start, deliveries, times)
            except Exception as e:  # noqa: BLE001 - raised by `facts`, in order
                self._fail(_DELIVERIES, e)

    def _sends(self, h: History, start: int, mask: list[bool], times: list[int]) -> None:
        stop = len(h)
        ids = list(compress(h.value[start:stop], mask))
        if not set(map(type, ids)) <= {str}:
            bad = _first_index(h, start, "send", lambda v: not isinstance(v, str))
            raise HarnessError(f"history op {bad + 1}: a send's value must be a message id string")
        ids = self._shared(ids)
        types, times = list(compress(h.type[start:stop], mask)), list(compress(times, mask))
        invokes = list(map(eq, types, repeat("invoke")))
        oks = list(map(eq, types, repeat("ok")))
        self.invoke_ids += compress(ids, invokes)
        self.invoke_times += compress(times, invokes)
        self.ok_ids += compress(ids, oks)
        self.ok_times += compress(times, oks)
        if invokes.count(True) + oks.count(True) < len(types):
            for m, type_ in compress(zip(ids, types), map(_UNCERTAIN.__contains__, types)):
                (self.refused if type_ == "fail" else self.unknown).add(m)

    def _others(self, h: History, start: int, sends: list[bool],
                deliveries: list[bool]) -> None:
        at = compress(range(start, len(h)), map(not_, map(or_, sends, deliveries)))
        self._others_of((i, h.f[i], h.type[i], h.value[i], h.time[i]) for i in at)

    def _others_of(self, ops: Iterable[tuple[int, str, str, Any, int]]) -> None:
        """Take in these ops, (index, f, type, value, time), none a send or a delivery."""
        for i, f, type_, value, t in ops:
            if f == "campaign":
                self._campaign(i, type_, value, t)
            elif f == "park":
                if type_ == "ok":
                    m = _message_id(i, value)
                    self.parked.setdefault(self.ids.setdefault(m, m), t)
            elif f == "fault":
                _fault(i, type_, value, t, self.windows, self.open_windows)
            elif f == "drain":
                if type_ in ("invoke", "ok"):
                    self.drain.setdefault(type_, t)

    def _campaign(self, i: int, type_: str, value: Any, t: int) -> None:
        ids = value.get("ids", []) if isinstance(value, dict) else None
        if not isinstance(ids, list) or not set(map(type, ids)) <= {str}:
            raise HarnessError(f"history op {i + 1}: a campaign's value must be "
                               '{"campaign": id, "ids": [message id strings]}')
        ids = self._shared(ids)
        _setdefault_all(self.campaigned, ids, t)
        if type_ == "ok":
            _setdefault_all(self.campaign_acked, ids, t)
        elif type_ == "fail":
            self.refused.update(ids)
        elif type_ == "info":
            self.unknown.update(ids)

    def _deliveries(self, h: History, start: int, mask: list[bool], times: list[int]) -> None:
        try:
            ids = list(map(_delivered_id, compress(h.value[start:], mask)))
            if not set(map(type, ids)) <= {str}:
                raise TypeError
        except (KeyError, TypeError):
            bad = _first_index(h, start, "deliver", lambda v: not isinstance(v, dict)
                               or not isinstance(v.get("id"), str))
            raise HarnessError(f"history op {bad + 1}: a deliver's value must be "
                               '{"id": message id string, "worker": ..., "attempt": ...}') from None
        ids = self._shared(ids)
        first, k = self.first, len(self.delivered_ids)
        before = len(first)
        first.update(zip(ids, compress(times, mask)))
        added = len(first) - before
        if added < len(ids):   # some id delivered before, here or in an earlier block
            # the ids first delivered here are the last keys of first (dicts keep order)
            new = set(islice(reversed(first), added))
            seen: set[str] = set()
            for m in ids:
                if m in seen or m not in new:
                    self.repeats.add(m)
                seen.add(m)
        self.delivery_blocks.append((k, start, len(h)))
        self.delivered_ids += ids

    def facts(self, h: History) -> Facts:
        """The facts of h, every block of which was added (raises what a bad op raised)."""
        if self.error is not None:
            raise self.error[1]
        # reversed: the first op of an id is inserted last, and wins
        sent = dict(zip(reversed(self.invoke_ids), reversed(self.invoke_times)))
        sent_acked = dict(zip(reversed(self.ok_ids), reversed(self.ok_times)))
        counts = Counter(dict.fromkeys(self.first, 1))
        first, repeated = dict(self.first), self._repeated(h, counts)
        for m, ds in repeated.items():
            first[m] = ds[0].time   # deliver ops may be out of time order: the earliest is first
        invoked = _plus_missing(sent, self.campaigned)     # sends take precedence
        acked = _plus_missing(sent_acked, self.campaign_acked)
        # not acknowledged: info unless refused and never answered "unknown" (ok > info > fail)
        uncertain = dict.fromkeys(invoked.keys() - acked.keys(), "info")
        uncertain.update(dict.fromkeys((self.refused - self.unknown) & uncertain.keys(), "fail"))
        return Facts(
            ops=len(h), origin=self.origin or 0, end=self.end or 0,
            invoked=invoked, acked=acked, uncertain=uncertain,
            deliveries=counts, first_delivery=first, repeated=repeated,
            parked=self.parked, windows=tuple(self.windows),
            drain_started=self.drain.get("invoke"), drained_at=self.drain.get("ok"))

    def _repeated(self, h: History, counts: Counter) -> dict[str, tuple[Delivery, ...]]:
        """Ids delivered more than once, with their deliveries in time order; their counts
        are set in counts (which holds 1 for every delivered id)."""
        if not self.repeats:
            return {}
        delivered, many = self.delivered_ids, self.repeats
        dict.update(counts, Counter(compress(delivered, map(many.__contains__, delivered))))
        starts = [k for k, _, _ in self.delivery_blocks]
        at: dict[int, list[int]] = {}   # block -> op index of each of its deliveries
        repeated: dict[str, list[tuple[int, Any]]] = {}   # id -> (time, value) in op order
        for k in compress(range(len(delivered)), map(many.__contains__, delivered)):
            b = bisect_right(starts, k) - 1
            if b not in at:
                k0, start, stop = self.delivery_blocks[b]
                at[b] = list(compress(range(start, stop), _mask(h.f[start:stop], "deliver")))
            i = at[b][k - starts[b]]
            repeated.setdefault(delivered[k], []).append((h.time[i], h.value[i]))
        return {m: _in_time_order(ds) for m, ds in repeated.items()}


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
