"""A fault schedule is a value: a list of steps (when, which fault, on whom, with what, for how long).

    name: rabbit-split
    steps:
      - {at: 0,  fault: partition, targets: [rabbitmq], params: {grouping: isolate, node: rmq1}, duration: 30}
      - {at: 10, fault: latency,   targets: ["workers:redis-primary"], params: {latency: 300}, duration: 10}

`at` is the offset in seconds from the run's start; `duration` is how long the fault stays before it
heals (0: heal right after inject; omitted/null: heal at the end of the run). Loadable from JSON or
YAML, savable, and `to_data()`/`from_data()` round-trip it, so Hypothesis can generate and shrink it.
Validation raises one `HarnessError` line naming the step and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

STEP_KEYS = ("at", "fault", "targets", "params", "duration", "id")


@dataclass(frozen=True)
class Step:
    at: float
    fault: str
    targets: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    duration: float | None = None
    id: str = ""

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": self.at, "fault": self.fault}
        if self.targets:
            out["targets"] = list(self.targets)
        if self.params:
            out["params"] = dict(self.params)
        out["duration"] = self.duration
        if self.id:
            out["id"] = self.id
        return out

    @property
    def heal_at(self) -> float | None:
        return None if self.duration is None else self.at + self.duration


@dataclass(frozen=True)
class Schedule:
    steps: tuple[Step, ...] = ()
    name: str = ""

    # ------------------------------------------------------------------ data
    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": [s.to_data() for s in self.steps]}
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_data(cls, data: Any, topology=None) -> "Schedule":
        """Build and validate a schedule from plain data (a mapping with `steps`, or a list of steps)."""
        if isinstance(data, list):
            data = {"steps": data}
        if not isinstance(data, dict):
            raise HarnessError(f"a schedule must be a mapping with 'steps' or a list of steps, "
                               f"not {type(data).__name__}")
        unknown = set(data) - {"steps", "name"}
        if unknown:
            raise HarnessError(f"schedule: unknown key {sorted(unknown)[0]!r} (known: steps, name)")
        raw = data.get("steps")
        if not isinstance(raw, list):
            raise HarnessError("schedule: 'steps' must be a list of steps")
        steps = tuple(_step(i, s) for i, s in enumerate(raw, 1))
        schedule = cls(steps=steps, name=str(data.get("name") or ""))
        schedule.validate(topology)
        return schedule

    def validate(self, topology=None) -> None:
        """Every fault exists, its parameters are known and well-typed, and every target could resolve."""
        from faults.base import get_fault
        from faults.roles import check_target

        ids = set()
        for i, step in enumerate(self.steps, 1):
            where = f"step {i}"
            fault = get_fault(step.fault, where)
            fault.check_params(step.params, where)
            if fault.targets_kind == "none" and step.targets:
                raise HarnessError(f"{where}: fault {step.fault!r} picks its own target and takes no targets")
            if fault.needs_targets and not step.targets:
                raise HarnessError(f"{where}: fault {step.fault!r} needs targets")
            for target in step.targets:
                check_target(target, fault.targets_kind, topology, where)
            if topology is not None:
                params = fault.check_params(step.params, where)
                fault.check_topology(params, topology, where)
                fault.check_targets(list(step.targets), params, topology, where)
            sid = self.step_id(i)
            if sid in ids:
                raise HarnessError(f"{where}: id {sid!r} is used twice")
            ids.add(sid)

    def step_id(self, index: int) -> str:
        """Step ids are given or the step's 1-based position."""
        return self.steps[index - 1].id or str(index)

    @property
    def length(self) -> float:
        """Seconds from the start to the last planned inject or heal."""
        return max([s.at for s in self.steps] + [s.heal_at for s in self.steps if s.heal_at is not None],
                   default=0.0)

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | Path, topology=None) -> "Schedule":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise HarnessError(f"cannot read schedule file {path}: {exc.strerror}") from None
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except (ValueError, Exception) as exc:  # yaml.YAMLError and json errors alike
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HarnessError(f"schedule file {path} does not parse: {first}") from None
        try:
            return cls.from_data(data, topology)
        except HarnessError as exc:
            raise HarnessError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = self.to_data()
        if path.suffix == ".json":
            text = json.dumps(data, indent=2) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path


def _number(value: Any, what: str, where: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise HarnessError(f"{where}: {what!r} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def _step(index: int, raw: Any) -> Step:
    where = f"step {index}"
    if not isinstance(raw, dict):
        raise HarnessError(f"{where}: a step must be a mapping, not {type(raw).__name__}")
    for key in raw:
        if key not in STEP_KEYS:
            from faults.base import _did_you_mean

            raise HarnessError(f"{where}: unknown key {key!r}{_did_you_mean(str(key), STEP_KEYS)}")
    if "fault" not in raw:
        raise HarnessError(f"{where}: no 'fault'")
    if not isinstance(raw["fault"], str):
        raise HarnessError(f"{where}: 'fault' must be a fault name, not {raw['fault']!r}")
    targets = raw.get("targets") or ()
    if isinstance(targets, str):
        targets = (targets,)
    if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
        raise HarnessError(f"{where}: 'targets' must be a list of target names")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise HarnessError(f"{where}: 'params' must be a mapping")
    return Step(at=_number(raw.get("at", 0), "at", where), fault=raw["fault"], targets=tuple(targets),
                params=dict(params), duration=_number(raw.get("duration"), "duration", where, allow_none=True),
                id=str(raw.get("id") or ""))
