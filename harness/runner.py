"""Run a fault schedule against a stack on a monotonic clock, recording every inject and heal.

    report = run_schedule(stack, Schedule.load("s.yaml"), history=HistoryWriter("h.jsonl"))
    print(report.summary())

Every inject and heal is a nemesis op in the history: `invoke` (what and to whom, as asked), then `ok`
(done; value names the nodes or links hit and the facts observed, e.g. the new leader, at the time
it took effect), `fail` (definitely not applied: the targets matched nothing) or `info` (an error
part-way: unknown). Whatever happens (the end, an exception, Ctrl-C) every fault that may be active
heals, in reverse order, each best effort; SIGINT is held back during that heal and re-raised after.
The report's `coverage` lists the faults that took effect and whom they hit, so a green run can be
told apart from one whose faults hit nothing.

`python -m harness.runner --run-id R --topology small schedule.yaml [--history h.jsonl]` runs a schedule
against a stack that is already up (e.g. from `chaos-harness up`).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from faults.base import Fault, FaultContext, NoTarget, get_fault
from harness.errors import HarnessError
from harness.schedule import Schedule

if TYPE_CHECKING:
    from harness.history import HistoryWriter
    from stack.stack import Stack

PROCESS = "nemesis"


@dataclass
class StepRecord:
    """What became of one step."""

    step: str
    fault: str
    requested: list[str]
    params: dict[str, Any]
    inject: str = "pending"  # pending | ok | fail | info
    heal: str = "pending"
    targets: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    injected_at: float | None = None  # seconds from the run's start, when the inject took effect
    healed_at: float | None = None

    @property
    def took_effect(self) -> bool:
        return self.inject == "ok" and bool(self.targets)

    def to_data(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    steps: list[StepRecord]
    interrupted: str = ""  # "" or why the run stopped early
    elapsed: float = 0.0

    @property
    def coverage(self) -> list[dict[str, Any]]:
        """The faults that took effect: step, fault, and the nodes/links hit with their roles."""
        return [{"step": s.step, "fault": s.fault, "targets": s.targets, "roles": s.roles,
                 "requested": s.requested, "healed": s.heal == "ok",
                 **({"picks": s.facts["picks"]} if s.facts.get("picks") else {})}
                for s in self.steps if s.took_effect]

    @property
    def missed(self) -> list[StepRecord]:
        return [s for s in self.steps if not s.took_effect]

    @property
    def all_healed(self) -> bool:
        """Every step that was (or may have been) injected has healed."""
        return all(s.heal == "ok" for s in self.steps if s.inject in ("ok", "info"))

    def to_data(self) -> dict[str, Any]:
        return {"steps": [s.to_data() for s in self.steps], "coverage": self.coverage,
                "interrupted": self.interrupted, "elapsed": self.elapsed, "all_healed": self.all_healed}

    def summary(self) -> str:
        lines = [f"faults: {len(self.coverage)}/{len(self.steps)} steps took effect"
                 + (f" (interrupted: {self.interrupted})" if self.interrupted else "")]
        for s in self.steps:
            whom = ", ".join(f"{t}({s.roles.get(t, '')})" if s.roles.get(t) else t for t in s.targets) or "-"
            lines.append(f"  step {s.step} {s.fault}: inject {s.inject}, heal {s.heal}; hit {whom}"
                         + (f"; {s.error}" if s.error else ""))
        return "\n".join(lines)


class Interrupted(Exception):
    """The runner was asked to stop (`Runner.stop()`)."""


class Runner:
    def __init__(self, stack: "Stack", schedule: Schedule, history: "HistoryWriter | None" = None, *,
                 progress: Callable[[str], None] | None = None, wait_timeout: float = 90.0,
                 strict: bool = False) -> None:
        self.stack = stack
        self.schedule = schedule
        self.history = history
        self.progress = progress
        self.wait_timeout = wait_timeout
        self.strict = strict  # an inject that errors aborts the run (after healing) instead of going on
        self.deploys: dict = {}
        self.active: list[tuple[int, Fault]] = []  # (step index, fault) possibly in effect, inject order
        self.records: list[StepRecord] = [
            StepRecord(schedule.step_id(i), s.fault, list(s.targets), dict(s.params))
            for i, s in enumerate(schedule.steps, 1)]
        self._stop = threading.Event()
        self._t0 = 0.0

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask a running `run()` (from another thread) to stop at once and heal."""
        self._stop.set()

    def run(self) -> RunReport:
        self.schedule.validate(self.stack.topology)
        for fault in {get_fault(step.fault) for step in self.schedule.steps}:
            fault.check_stack(self.stack)  # e.g. a fault that needs what a real Toxiproxy lacks, before step 1
        self._t0 = time.monotonic()
        report = RunReport(self.records)
        try:
            for when, kind, index in self._events():
                self._wait_until(when)
                if kind == "inject":
                    self._inject(index)
                else:
                    self._heal(index)
        except BaseException as exc:
            report.interrupted = "SIGINT" if isinstance(exc, KeyboardInterrupt) else \
                f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.heal_all()
            report.elapsed = time.monotonic() - self._t0
            raise
        self.heal_all()
        report.elapsed = time.monotonic() - self._t0
        self.report = report
        return report

    def _events(self) -> list[tuple[float, str, int]]:
        events = []
        end = self.schedule.length
        for i, step in enumerate(self.schedule.steps, 1):
            events.append((step.at, 1, "inject", i))
            # Steps with no duration heal at the end, after every planned event.
            heal_at = step.heal_at if step.heal_at is not None else end
            events.append((heal_at, 0 if step.heal_at is not None else 2, "heal", i))
        # At the same instant heals go first (a fault ending makes room for the next), then injects.
        events.sort(key=lambda e: (e[0], e[1], e[3]))
        return [(when, kind, index) for when, _, kind, index in events]

    def _wait_until(self, offset: float) -> None:
        remaining = self._t0 + offset - time.monotonic()
        if self._stop.wait(max(0.0, remaining)) or self._stop.is_set():
            raise Interrupted("runner stopped")

    # ------------------------------------------------------------------ one inject, one heal
    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def _record(self, type_: str, value: dict[str, Any]) -> None:
        if self.history is not None:
            self.history.record(PROCESS, type_, "fault", value)

    def _say(self, line: str) -> None:
        if self.progress:
            self.progress(f"[runner +{self._now():.1f}s] {line}")

    def _inject(self, index: int) -> None:
        step = self.schedule.steps[index - 1]
        record = self.records[index - 1]
        base = {"action": "inject", "step": record.step, "fault": step.fault, "params": dict(step.params),
                "targets": list(step.targets)}
        ctx = FaultContext(self.stack, step=record.step, wait_timeout=self.wait_timeout,
                           progress=self.progress, deploys=self.deploys)
        fault = get_fault(step.fault)(ctx, list(step.targets), step.params)
        self._record("invoke", base)
        self.active.append((index, fault))
        self._say(f"step {record.step}: inject {step.fault} {list(step.targets)}")
        try:
            effect = fault.inject()
        except NoTarget as exc:
            self.active.remove((index, fault))
            record.inject, record.heal, record.error = "fail", "skipped", str(exc)
            self._record("fail", {**base, "error": str(exc)})
            self._say(f"step {record.step}: {step.fault} hit nothing: {exc}")
            return
        except Exception as exc:
            record.inject, record.error = "info", f"inject: {exc}"
            self._record("info", {**base, "error": str(exc)})
            self._say(f"step {record.step}: inject {step.fault} failed: {exc}")
            if self.strict:
                raise
            return
        except BaseException:
            record.inject = "info"
            self._record("info", {**base, "error": "interrupted during inject"})
            raise
        data = effect.to_data()
        record.inject, record.targets = "ok", list(effect.targets)
        record.roles = dict(effect.facts.get("roles") or {})
        record.facts = {k: v for k, v in effect.facts.items() if k != "roles"}
        record.injected_at = self._now()
        self._record("ok", {**base, "targets": list(effect.targets), "requested": list(step.targets),
                            "effect": data})
        self._say(f"step {record.step}: {step.fault} took effect on {list(effect.targets)}")

    def _heal(self, index: int) -> None:
        entry = next(((i, f) for i, f in self.active if i == index), None)
        if entry is None:
            return
        step = self.schedule.steps[index - 1]
        record = self.records[index - 1]
        fault = entry[1]
        base = {"action": "heal", "step": record.step, "fault": step.fault, "params": dict(step.params),
                "targets": record.targets or list(step.targets)}
        self._record("invoke", base)
        again = record.heal == "info"  # heal_all's second try of a heal that failed in its time
        try:
            effect = fault.heal()
        except Exception as exc:
            record.heal = "info"
            if f"heal: {exc}" not in record.error:
                record.error = (record.error + "; " if record.error else "") + f"heal: {exc}"
            self._record("info", {**base, "error": str(exc)})
            self._say(f"step {record.step}: heal {step.fault} failed{' again, at the end' if again else ''}: {exc}")
            return  # stays active: heal_all tries again (heals are idempotent)
        self.active.remove(entry)
        record.heal, record.healed_at = "ok", self._now()
        self._record("ok", {**base, "effect": effect.to_data()})
        self._say(f"step {record.step}: healed {step.fault}" + (" at the second try, at the end" if again else ""))

    def heal_all(self) -> None:
        """Heal every fault that may still be in effect, newest first; SIGINT waits until this is done."""
        with _sigint_deferred() as pending:
            for index, _ in list(reversed(self.active)):
                self._heal(index)
        if pending:
            raise KeyboardInterrupt


@contextmanager
def _sigint_deferred():
    """Hold SIGINT back (noting it) while healing, so a second Ctrl-C cannot leave faults in place."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def run_schedule(stack: "Stack", schedule: Schedule, history: "HistoryWriter | None" = None,
                 **kwargs: Any) -> RunReport:
    """Run `schedule` against `stack` (see `Runner`); returns the report, re-raises what stopped it."""
    return Runner(stack, schedule, history, **kwargs).run()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from harness.history import HistoryWriter
    from harness.progress import say, show_progress
    from stack.stack import Stack

    parser = argparse.ArgumentParser(prog="python -m harness.runner", description=__doc__.split("\n")[0])
    parser.add_argument("schedule")
    parser.add_argument("--run-id", required=True, help="the run (stack) to fault; it must be up")
    parser.add_argument("--topology", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", help="append the nemesis ops to this JSONL history")
    parser.add_argument("--report", help="write the run report (coverage) as JSON here")
    args = parser.parse_args(argv)
    show_progress()
    try:
        stack = Stack(args.topology, run_id=args.run_id, seed=args.seed, with_services=False,
                      progress=say)
        schedule = Schedule.load(args.schedule, stack.topology)
        history = HistoryWriter(args.history) if args.history else None
        runner = Runner(stack, schedule, history, progress=say)
        try:
            report = runner.run()
        finally:
            if args.report:
                with open(args.report, "w") as fh:
                    json.dump(RunReport(runner.records).to_data(), fh, indent=2, default=str)
            if history:
                history.close()
    except KeyboardInterrupt:
        print("interrupted: every fault healed", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
