"""The time series a run report plots, derived from a history's facts: request and delivery
rates, the backlog, and latency (raw points, thinned when many, and per-bin quantiles).

Times are seconds after the run's first op, as in the verdict's fault windows."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, floordiv, sub

from harness.checkers.facts import NS, Facts

#: At most this many bins on a time axis; longer runs get wider bins.
MAX_BINS = 1200
#: At most this many raw latency points on the page (the slowest are always among them).
MAX_POINTS = 10_000
SLOWEST_KEPT = 200
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1.0}


@dataclass(frozen=True)
class Series:
    """One line or cloud of points: x in seconds of run time."""

    name: str
    x: list[float]
    y: list[float]


@dataclass(frozen=True)
class WindowSpan:
    """A fault window in run seconds; an unhealed window ends at the run's last op."""

    step: str
    fault: str
    targets: tuple[str, ...]
    start_s: float
    end_s: float
    healed: bool
    took_effect: bool | None = None   # None: the run recorded no coverage

    @property
    def label(self) -> str:
        if self.took_effect is False:
            return f"{self.step} {self.fault} (no effect)"
        return f"{self.step} {self.fault}" + (f" → {', '.join(self.targets)}" if self.targets else "")


@dataclass(frozen=True)
class RunSeries:
    bin_s: float
    duration_s: float
    requests: tuple[Series, ...]      # messages per second by outcome: accepted, refused, unknown
    deliveries: Series                # deliver ops per second (repeats included)
    backlog: Series                   # accepted, not yet delivered, at the end of each bin
    latency: Series                   # (acceptance time, first delivery - acceptance), maybe thinned
    latency_total: int                # how many messages were measured
    thinning: str                     # "" or how the raw points were thinned
    quantiles: tuple[Series, ...]     # per bin of acceptance time
    windows: tuple[WindowSpan, ...]


def bin_width(duration_s: float) -> float:
    """1 s, or wider so that a run has at most MAX_BINS bins."""
    return max(1.0, math.ceil(duration_s / MAX_BINS))


def windows_of(facts: Facts, targets_hit: dict[str, list[str]] | None = None) -> tuple[WindowSpan, ...]:
    """The facts' fault windows in run seconds. targets_hit (step -> nodes or links, from the
    run's coverage) names whom a step really hit, and a step missing from it took no effect (a
    window is opened by the inject's invoke, whatever came of it); without it, the targets its
    inject asked for."""
    hit = targets_hit or {}
    return tuple(
        WindowSpan(w.step, w.fault, tuple(str(t) for t in hit.get(w.step, w.targets)),
                   _seconds(w.start, facts.origin),
                   _seconds(facts.end if w.end is None else w.end, facts.origin), w.end is not None,
                   None if targets_hit is None else w.step in targets_hit)
        for w in facts.windows)


def run_series(facts: Facts, *, targets_hit: dict[str, list[str]] | None = None,
               max_points: int = MAX_POINTS) -> RunSeries:
    origin = facts.origin
    duration_s = _seconds(facts.end, origin)
    bin_s = bin_width(duration_s)
    bin_ns = round(bin_s * NS)
    nbins = (facts.end - origin) // bin_ns + 1
    centers = [(i + 0.5) * bin_s for i in range(nbins)]

    def per_second(name: str, times: Iterable[int]) -> Series:
        return Series(name, centers, [c / bin_s for c in _histogram(times, origin, bin_ns, nbins)])

    acked = dict(facts.acked.items())
    invoked = facts.invoked
    refused = [invoked[m] for m, kind in facts.uncertain.items() if kind == "fail"]
    unknown = [invoked[m] for m, kind in facts.uncertain.items() if kind != "fail"]
    first = dict(facts.first_delivery.items())
    delivery_times = list(first.values())
    for ds in facts.repeated.values():
        delivery_times += [d.time for d in ds[1:]]

    # latency of every message both accepted and delivered, as two columns in acceptance order;
    # one delivered before the API answered has waited 0 from the client's view (as in `late`)
    measured = acked.keys() & first.keys()
    order = sorted(measured, key=acked.__getitem__)
    t0s = list(map(acked.__getitem__, order))
    lats = [max(0, d) for d in map(sub, map(first.__getitem__, order), t0s)]

    # backlog: an accepted message leaves it at its first delivery (or at its acceptance)
    added = _histogram(acked.values(), origin, bin_ns, nbins)
    removed = _histogram(map(add, t0s, lats), origin, bin_ns, nbins)
    backlog, level = [], 0
    for a, r in zip(added, removed):
        level += a - r
        backlog.append(level)

    latency, thinning = _thinned(t0s, lats, origin, max_points)
    return RunSeries(
        bin_s=bin_s, duration_s=duration_s,
        requests=(per_second("accepted", acked.values()), per_second("refused", refused),
                  per_second("unknown", unknown)),
        deliveries=per_second("delivered", delivery_times),
        backlog=Series("backlog", [(i + 1) * bin_s for i in range(nbins)], backlog),
        latency=latency, latency_total=len(lats), thinning=thinning,
        quantiles=_quantiles(t0s, lats, origin, bin_ns, nbins, centers),
        windows=windows_of(facts, targets_hit))


def _seconds(t: int, origin: int) -> float:
    return (t - origin) / NS


def _bins(times: Iterable[int], origin: int, bin_ns: int) -> Iterable[int]:
    """Each time's bin, at C speed (a history has millions); every time is an op's, so within
    [origin, end] and its bin within range."""
    return map(floordiv, map(sub, times, repeat(origin)), repeat(bin_ns))


def _histogram(times: Iterable[int], origin: int, bin_ns: int, nbins: int) -> list[int]:
    counts = Counter(_bins(times, origin, bin_ns))
    return [counts.get(i, 0) for i in range(nbins)]


def _thinned(t0s: Sequence[int], lats: Sequence[int], origin: int,
             limit: int) -> tuple[Series, str]:
    """At most `limit` points: evenly spaced in acceptance order, plus the slowest ones, so that
    the outliers a reader looks for are never thinned away."""
    n = len(lats)
    if n <= limit:
        kept: Iterable[int] = range(n)
        how = ""
    else:
        evenly = limit - SLOWEST_KEPT
        chosen = {k * n // evenly for k in range(evenly)}
        chosen.update(heapq.nlargest(SLOWEST_KEPT, range(n), key=lats.__getitem__))
        kept = sorted(chosen)
        how = (f"showing {len(chosen):,} of {n:,} points: {evenly:,} evenly spaced in "
               f"acceptance order, plus the {SLOWEST_KEPT} slowest; the quantiles use every point")
    kept = list(kept)
    return (Series("latency", [_seconds(t0s[i], origin) for i in kept], [lats[i] / NS for i in kept]),
            how)


def _quantiles(t0s: Sequence[int], lats: Sequence[int], origin: int, bin_ns: int, nbins: int,
               centers: list[float]) -> tuple[Series, ...]:
    by_bin: list[list[int]] = [[] for _ in range(nbins)]
    for b, lat in zip(_bins(t0s, origin, bin_ns), lats):
        by_bin[b].append(lat)
    out = {name: Series(name, [], []) for name in QUANTILES}
    for center, lats in zip(centers, by_bin):
        if not lats:
            continue
        lats.sort()
        for name, q in QUANTILES.items():
            out[name].x.append(center)
            out[name].y.append(lats[max(0, math.ceil(q * len(lats)) - 1)] / NS)
    return tuple(out.values())
