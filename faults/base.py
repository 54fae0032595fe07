"""What every fault shares: its parameters as plain data, the context it runs in, and the registry.

A fault is a small class with `inject()` and `heal()`, registered by name:

    @register
    class Kill(NodeFault):
        name = "kill"
        summary = "SIGKILL the targets' containers; heal starts them again"
        params = ()

`describe()` gives the plain-data description that schedule files, Hypothesis strategies and reports
share. `inject()`/`heal()` return an `Effect`: what was done, to whom, and what was observed.
"""

from __future__ import annotations

import difflib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import HarnessError

if TYPE_CHECKING:
    from stack.stack import Stack

# What a fault's targets are: containers of the stack, links through the proxy, or nothing
# (the fault picks its own victim, e.g. the current Redis primary).
TARGET_KINDS = ("nodes", "links", "none")
LABEL_FAULT_OWNER = "chaos-harness.fault-owner"  # "<pid>-<start>" of the process that applied a fault
LABEL_FAULT_OWNER_HOST = "chaos-harness.fault-owner-host"


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: a name, a type (int, float, str, bool, list, dict) and a default; for
    numbers, the unit, the bounds a value must keep (inclusive; None: open), and the range generated
    schedules draw from (`search`, within the bounds; for floats, in steps of a tenth); for choices,
    `search` names those generated schedules draw (default: all)."""

    name: str
    type: type
    default: Any = None
    required: bool = False
    choices: tuple = ()
    help: str = ""
    unit: str = ""
    bounds: tuple[float | None, float | None] = (0, None)
    search: tuple | None = None

    def check(self, value: Any, where: str) -> Any:
        ok = isinstance(value, self.type) and not (self.type in (int, float) and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if self.type is list and isinstance(value, str):  # "a,b" for a list of names
            value, ok = [v for v in value.split(",") if v], True
        if not ok:
            raise HarnessError(f"{where}: parameter {self.name!r} must be {self.type.__name__}, "
                               f"not {type(value).__name__} {value!r}")
        if self.choices and value not in self.choices:
            raise HarnessError(f"{where}: parameter {self.name!r} must be one of "
                               f"{', '.join(map(str, self.choices))}, not {value!r}")
        if self.type in (int, float):
            low, high = self.bounds
            if (low is not None and value < low) or (high is not None and value > high):
                unit = f" ({self.unit})" if self.unit else ""
                span = (f"within {low}..{high}{unit}" if low is not None and high is not None
                        else f"at least {low}{unit}" if low is not None else f"at most {high}{unit}")
                raise HarnessError(f"{where}: parameter {self.name!r} must be {span}, not {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type.__name__, "default": self.default}
        if self.required:
            out["required"] = True
        if self.choices:
            out["choices"] = list(self.choices)
        if self.help:
            out["help"] = self.help
        if self.type in (int, float):
            out["unit"] = self.unit
            out["bounds"] = list(self.bounds)
            if self.search is not None:
                out["search"] = list(self.search)
        return out


@dataclass(frozen=True)
class Effect:
    """What one inject or heal did: the resolved targets, and facts observed (e.g. the new leader)."""

    targets: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {"targets": list(self.targets), **self.facts}


class NoTarget(HarnessError):
    """The targets resolved to nothing: the fault would hit nobody, so it was not applied."""


@dataclass
class FaultContext:
    """What a fault may use at run time: the stack, a deadline budget, and who applies the fault.

    `owner` labels (pid + process start time) mark helpers and toxics so that `faults.sweep` can
    tell a live runner's faults from those a dead runner left behind.
    """

    stack: "Stack"
    step: int | str = 0
    wait_timeout: float = 90.0
    progress: Any = None
    # Per node, a stack of (env replaced, env deployed) so that rollback restores the previous env;
    # the runner shares one dict between all steps of a run.
    deploys: dict[str, list[tuple[dict[str, str], dict[str, str]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A fault is about to act on the stack: its next reset must not take the undisturbed path,
        # whatever the fault did (a toxic or an exec leaves no Docker event behind).
        note = getattr(self.stack, "note_disturbed", None)
        if note is not None:
            note()

    def deadline(self, seconds: float | None = None) -> float:
        return time.monotonic() + (self.wait_timeout if seconds is None else seconds)

    def say(self, line: str) -> None:
        if self.progress:
            self.progress(f"[faults] step {self.step}: {line}")

    @property
    def owner_tag(self) -> str:
        """`<pid>-<start>`: this process, as toxic names and helper labels carry it."""
        from stack.cleanup import _process_start

        pid = os.getpid()
        return f"{pid}-{_process_start(pid)}"

    def stack_owner(self) -> dict[str, str]:
        """The owner labels of the stack's own containers (this process may be another one)."""
        from stack import cleanup

        keys = (cleanup.LABEL_OWNER_PID, cleanup.LABEL_OWNER_START, cleanup.LABEL_OWNER_HOST,
                cleanup.LABEL_DETACHED)
        for node in self.stack.topology.nodes:
            try:
                labels = self.stack.container(node.name).labels
            except Exception:
                continue
            return {k: labels[k] for k in keys if k in labels}
        return {}

    def helper_labels(self) -> dict[str, str]:
        from stack import cleanup

        # The owner labels stay the stack's (the reaper judges a run by any of its containers); the
        # process applying the fault is named apart, for `faults.sweep`.
        labels = self.stack.labels(**{cleanup.LABEL_KIND: "helper"})
        labels.update(self.stack_owner())
        labels[LABEL_FAULT_OWNER] = self.owner_tag
        labels[LABEL_FAULT_OWNER_HOST] = socket.gethostname()
        labels["chaos-harness.step"] = str(self.step)
        return labels


class Fault:
    """Base of every fault. Subclasses set `name`, `summary`, `params`, `targets_kind`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    targets_kind: ClassVar[str] = "nodes"
    # Whether a schedule step of this fault must give targets (else the fault picks its own).
    needs_targets: ClassVar[bool] = True
    # What generated schedules need to know (harness.generate), said by the fault rather than kept there:
    # `short`: inject and heal fit a run of a few seconds (the ci profile draws only these);
    # `acts_on_groups`: it acts on several nodes together or in turn (a partition, a rolling restart), so
    # its generated targets are roles of several nodes, not single nodes;
    # `follows`: faults it acts after, on the same targets (a rollback undoes a deploy);
    # `replaces_containers`: it starts new containers, whose disks start empty (the stack keeps no
    # volumes), so generated schedules aim it only at app services: on a broker, a ZooKeeper or a Redis
    # node it would wipe the node's data, the harness's doing and not a fault of the system.
    # `narrow_targets`: it serves only some nodes (clock-skew the opted-in ones, rabbitmq-alarm brokers):
    # generated steps aim only at targets its `check_targets` accepts.
    short: ClassVar[bool] = True
    acts_on_groups: ClassVar[bool] = False
    follows: ClassVar[tuple[str, ...]] = ()
    replaces_containers: ClassVar[bool] = False
    narrow_targets: ClassVar[bool] = False

    def __init__(self, ctx: FaultContext, targets: list[str], params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.targets = list(targets)
        self.p = self.check_params(params, f"fault {self.name!r}")
        self.injected: Effect | None = None

    # ---------------------------------------------------------------- description and validation
    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary, "targets": cls.targets_kind,
                "needs_targets": cls.needs_targets, "params": [p.describe() for p in cls.params]}

    @classmethod
    def check_params(cls, params: dict[str, Any] | None, where: str) -> dict[str, Any]:
        params = dict(params or {})
        known = {p.name: p for p in cls.params}
        for key in params:
            if key not in known:
                hint = _did_you_mean(key, known)
                raise HarnessError(f"{where}: unknown parameter {key!r} for fault {cls.name!r}{hint}"
                                   f" (known: {', '.join(known) or 'none'})")
        out: dict[str, Any] = {}
        for p in cls.params:
            if p.name in params and params[p.name] is not None:
                out[p.name] = p.check(params[p.name], where)
            elif p.required:
                raise HarnessError(f"{where}: fault {cls.name!r} needs parameter {p.name!r}")
            else:
                out[p.name] = p.default
        cls.check_combination(out, where)
        return out

    @classmethod
    def check_combination(cls, params: dict[str, Any], where: str) -> None:
        """Checks across parameters (override where needed)."""

    @classmethod
    def check_topology(cls, params: dict[str, Any], topology: Any, where: str) -> None:
        """Refuse, in one line, parameters this topology cannot serve (schedule validation asks, before
        anything starts; override where needed)."""

    @classmethod
    def check_targets(cls, targets: list[str], params: dict[str, Any], topology: Any, where: str) -> None:
        """Refuse, in one line, parameters these targets cannot serve (e.g. a grouping that needs more
        nodes than the targets have); asked after `check_topology`, override where needed."""

    @classmethod
    def check_stack(cls, stack: Any) -> None:
        """Refuse, in one line naming the fault, what it cannot do on this running stack (say, a real
        Toxiproxy in place of ours); the runner asks before the first step (override where needed)."""

    # ---------------------------------------------------------------- the two verbs
    def inject(self) -> Effect:
        raise NotImplementedError

    def heal(self) -> Effect:
        """Undo the fault; idempotent and best effort (a second call is harmless)."""
        raise NotImplementedError


FAULTS: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in FAULTS and FAULTS[cls.name] is not cls:
        raise ValueError(f"fault name {cls.name!r} registered twice")
    FAULTS[cls.name] = cls
    return cls


def _did_you_mean(word: str, known) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_fault(name: str, where: str = "") -> type[Fault]:
    load_all()
    try:
        return FAULTS[name]
    except (KeyError, TypeError):
        prefix = f"{where}: " if where else ""
        hint = _did_you_mean(str(name), FAULTS)
        if not hint:
            hint = f" (known: {', '.join(sorted(FAULTS))})"
        raise HarnessError(f"{prefix}unknown fault {name!r}{hint}") from None


def _fault_modules() -> list[str]:
    """Every module of the `faults` package (not its sub-packages): adding a fault is adding a file."""
    import pkgutil

    import faults

    return [m.name for m in pkgutil.iter_modules(faults.__path__) if not m.ispkg and m.name != "base"]


def load_all() -> dict[str, type[Fault]]:
    """Import every fault module, so each registers itself; returns the registry."""
    import importlib

    for module in _fault_modules():
        importlib.import_module(f"faults.{module}")
    return FAULTS


def describe_all() -> list[dict[str, Any]]:
    return [FAULTS[name].describe() for name in sorted(load_all())]
