"""What every checker returns: a status, counts, the first offenders and their fault windows."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["valid", "invalid", "unknown"]

#: How many offending ids a result lists.
EXAMPLES = 10


@dataclass(frozen=True)
class Offender:
    """One offending message: its id, the fault steps open around it, and a short note."""

    id: str
    windows: tuple[str, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "windows": list(self.windows), "detail": self.detail}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one checker. `examples` are the first offenders in send order."""

    name: str
    status: Status
    invariant: str
    counts: Mapping[str, int]
    examples: tuple[Offender, ...] = ()
    measures: Mapping[str, float | None] = field(default_factory=dict)
    #: every offending id (kept out of the JSON and the summary: it can be huge)
    ids: frozenset[str] = field(default=frozenset(), repr=False)
    #: why the status is what it is, when counts alone do not say (e.g. why unknown)
    note: str = ""

    @property
    def violated(self) -> bool:
        return self.status != "valid"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "invariant": self.invariant,
                "note": self.note, "counts": dict(self.counts), "measures": dict(self.measures),
                "examples": [o.to_dict() for o in self.examples]}


def first(ids: Iterable[str], order: Callable[[str], int]) -> list[str]:
    """The first `EXAMPLES` ids by `order` (ties broken by id, so results are deterministic)."""
    return heapq.nsmallest(EXAMPLES, ids, key=lambda i: (order(i), i))
