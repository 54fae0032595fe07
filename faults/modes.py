"""Target modes: `one:`, `minority:`, `majority:`, `all:`, `percent:N:` before any target pick some of it.

A mode picks from what its target resolves to (nodes, or links for link faults), with a random source
seeded by the run's seed, the step and the target, so one seed and one schedule always pick the same:

- `one:` one of them (`any:` is its older spelling);
- `minority:` n // 2 of n: the most that are not a majority (Jepsen's `:minority`; half of an even n);
- `majority:` n // 2 + 1 of n;
- `all:` every one (for symmetry: `all:primaries` is `primaries`);
- `percent:N:` floor(n * N / 100), N a whole number within 1..100 (Chaos Mesh's `fixed-percent`).

Every pick is recorded as plain data (`Pick.to_data()`), so the history says whom a mode chose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from harness.errors import HarnessError

MODES = ("one", "minority", "majority", "all", "percent")
ALIASES = {"any": "one"}


@dataclass(frozen=True)
class Mode:
    name: str  # one of MODES
    percent: int = 0

    @property
    def label(self) -> str:
        return f"percent:{self.percent}" if self.name == "percent" else self.name

    def count(self, n: int) -> int:
        """How many of n it picks."""
        if self.name == "one":
            return min(1, n)
        if self.name == "minority":
            return n // 2
        if self.name == "majority":
            return n // 2 + 1 if n else 0
        if self.name == "percent":
            return n * self.percent // 100
        return n

    def pick(self, pool: Sequence[str], seed: Any, target: str) -> list[str]:
        """The picked members of `pool`, in pool order; the same for the same seed and target."""
        k = self.count(len(pool))
        rng = random.Random(f"{seed}:{target}")
        chosen = {rng.choice(list(pool))} if k == 1 else set(rng.sample(list(pool), k))
        return [x for x in pool if x in chosen]


@dataclass(frozen=True)
class Pick:
    """What one mode target picked, from what: recorded with the fault's effect (`picks`)."""

    target: str
    pool: tuple[str, ...]
    picked: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {"target": self.target, "from": list(self.pool), "picked": list(self.picked)}


def split(target: str, where: str = "") -> tuple[Mode, str] | None:
    """(mode, the target it is over) if `target` starts with a mode, else None; a bad mode raises one line."""
    head, sep, rest = target.partition(":")
    head = ALIASES.get(head, head)
    if not sep or head not in MODES:
        return None
    prefix = f"{where}: " if where else ""
    if head != "percent":
        if not rest:
            raise HarnessError(f"{prefix}target {target!r}: mode {head!r} needs a target after it ({head}:<target>)")
        return Mode(head), rest
    number, sep, inner = rest.partition(":")
    if not sep or not inner:
        raise HarnessError(f"{prefix}target {target!r}: write percent:N:<target>, N within 1..100")
    if not number.isdigit() or not 1 <= int(number) <= 100:
        raise HarnessError(f"{prefix}target {target!r}: the percent must be a whole number within 1..100, "
                           f"not {number!r}")
    return Mode("percent", int(number)), inner


def looks_like_mode(target: str) -> str | None:
    """The mode a target probably meant to name (a typo such as `minorty:`), for an error's hint."""
    import difflib

    head, sep, rest = target.partition(":")
    if not sep or not rest:
        return None
    close = difflib.get_close_matches(head, list(MODES) + list(ALIASES), n=1, cutoff=0.75)
    return close[0] if close else None
