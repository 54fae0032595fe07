"""Soak runs: a nemesis package (a set of faults) drawn at random intervals over a long run, as Jepsen's
`--nemesis-interval` does, with the workload running all the while.

    schedule = soak_schedule(topology, ["partition", "kill", "latency"], duration_s=7200,
                             interval=(10, 30), window=(5, 15), seed=7)

Each fault starts `interval` seconds after the previous one healed (windows never overlap unless
`overlap`, then each starts `interval` after the previous one started), lasts `window` seconds, hits
targets drawn as generated schedules draw them (`harness.generate`: single nodes, roles of several nodes
for partitions and rolling faults, links) with parameters drawn from each fault's declared ranges. All of
it comes from one seed: the same seed and stack give the same schedule. The schedule is plain data (a
Scenario file), saved before the run starts, so a soak can be replayed with `chaos-harness replay`.
"""

from __future__ import annotations

import random
from typing import Any

from harness.errors import HarnessError

DEFAULT_FAULTS = ("partition", "kill", "pause", "latency", "link-down", "redis-failover", "cpu-starve",
                  "dns-fail")


def parse_span(text: str, what: str) -> tuple[float, float]:
    """`10..30s`, `10-30`, `15s` -> (low, high) seconds."""
    raw = text.strip().lower().removesuffix("s")
    for sep in ("..", "-"):
        if sep in raw:
            low, _, high = raw.partition(sep)
            break
    else:
        low = high = raw
    try:
        span = (float(low.strip().removesuffix("s")), float(high.strip()))
    except ValueError:
        raise HarnessError(f"{what}: expected seconds as LOW..HIGH (e.g. 10..30s), not {text!r}") from None
    if not 0 < span[0] <= span[1]:
        raise HarnessError(f"{what}: expected 0 < LOW <= HIGH seconds, not {text!r}")
    return span


def parse_duration(text: str, what: str = "--duration") -> float:
    """`2h`, `30m`, `90s`, `45` -> seconds."""
    raw = text.strip().lower()
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    try:
        value = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        raise HarnessError(f"{what}: expected a duration such as 2h, 30m or 90s, not {text!r}") from None
    if value <= 0:
        raise HarnessError(f"{what}: must be positive, not {text!r}")
    return value


def _targets(rng: random.Random, fault, topology) -> list[str]:
    from harness.generate import target_pool

    if fault.targets_kind not in ("links", "nodes"):
        return []  # the fault picks its own victim
    pool = target_pool(fault, topology, long_faults=True)
    if not pool:
        raise HarnessError(f"soak: fault {fault.name!r} has no target in the {topology.name} stack")
    return [rng.choice(pool)]


def _params(rng: random.Random, fault, targets: list[str], topology) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in fault.params:
        if rng.random() < 0.5:
            continue  # the default
        if p.choices:
            pool = list(p.search if p.search is not None else p.choices)
            rng.shuffle(pool)
            for value in pool:
                try:
                    fault.check_targets(targets, fault.check_params({**out, p.name: value}, "soak"), topology, "soak")
                except HarnessError:
                    continue
                out[p.name] = value
                break
        elif p.search is not None and p.default is not None and p.type in (int, float):
            low, high = p.search
            out[p.name] = rng.randint(int(low), int(high)) if p.type is int else round(rng.uniform(low, high), 1)
    return {k: v for k, v in out.items() if v != next(p.default for p in fault.params if p.name == k)}


def soak_schedule(topology, faults: list[str], duration_s: float, interval: tuple[float, float] = (10, 30),
                  window: tuple[float, float] = (5, 15), seed: int = 0, overlap: bool = False) -> list[dict[str, Any]]:
    """Steps (schedule-file data) filling `duration_s`; every step is checked against the stack."""
    from faults.base import get_fault
    from harness.schedule import Schedule

    classes = [get_fault(name, "soak") for name in faults]
    if not classes:
        raise HarnessError("soak: name at least one fault")
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    at = rng.uniform(*interval)
    while at + window[0] < duration_s:
        fault = rng.choice(classes)
        length = min(round(rng.uniform(*window), 1), round(duration_s - at, 1))
        for _ in range(20):  # a draw the stack refuses (say, a grouping for too few nodes) is drawn again
            targets = _targets(rng, fault, topology)
            step = {"at": round(at, 1), "fault": fault.name, "duration": length}
            if targets:
                step["targets"] = targets
            params = _params(rng, fault, targets, topology)
            if params:
                step["params"] = params
            try:
                Schedule.from_data(steps + [step], topology)
            except HarnessError:
                continue
            steps.append(step)
            break
        else:
            raise HarnessError(f"soak: could not draw a step of {fault.name!r} that the {topology.name} stack accepts")
        at = (at if overlap else at + length) + rng.uniform(*interval)
    return steps
