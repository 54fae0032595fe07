"""One chaos run as data, and the function that runs it against a stack and judges it.

A `Scenario` names a deployment (services redeployed with incident switches, or hardened), a workload,
a fault schedule and the checker's bounds. `run_scenario` resets the stack, deploys, runs the workload
while the schedule's faults come and go, heals, drains, reads the dead-letter queue, and judges the
recorded history offline. The pytest plugin and the CLI both call it.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError


@dataclass(frozen=True)
class WorkloadSpec:
    clients: int = 4
    rate: float = 40.0
    duration_s: float = 30.0
    campaign_share: float = 0.0
    campaign_size: int = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    schedule: list[dict[str, Any]] | dict[str, Any] = field(default_factory=list)  # as in a schedule file
    deploy: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> env override, before the load
    workload: WorkloadSpec = WorkloadSpec()
    drain_s: float = 45.0
    late_bound_s: float = 30.0

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Scenario":
        data = dict(data)
        data["workload"] = WorkloadSpec(**data.get("workload", {}))
        return cls(**data)

    def validate(self, topology) -> "Schedule":
        """Check everything a run reads against `topology`, before any container is touched; the schedule."""
        from harness.schedule import Schedule

        where = f"scenario {self.name!r}"
        schedule = Schedule.from_data(self.schedule, topology)
        if topology.app is None:
            raise HarnessError(f"{where}: the {topology.name} stack declares no app to drive "
                               "(x-chaos.client and x-chaos.provider in its stack file)")
        names = {n.name for n in topology.nodes}
        if not isinstance(self.deploy, dict):
            raise HarnessError(f"{where}: 'deploy' must map node names to environment overrides")
        for node, env in self.deploy.items():
            if node not in names:
                raise HarnessError(f"{where}: deploy names node {node!r}, which the {topology.name} topology "
                                   f"lacks (nodes: {', '.join(sorted(names))})")
            if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise HarnessError(f"{where}: deploy of {node!r} must map variable names to strings")
        spec = self.workload

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        for name, value in (("clients", spec.clients), ("campaign_size", spec.campaign_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HarnessError(f"{where}: workload {name} must be a whole number of at least 1, not {value!r}")
        for name, value in (("rate", spec.rate), ("duration_s", spec.duration_s)):
            if not number(value) or value <= 0:
                raise HarnessError(f"{where}: workload {name} must be a number above 0, not {value!r}")
        if not number(spec.campaign_share) or not 0 <= spec.campaign_share <= 1:
            raise HarnessError(f"{where}: workload campaign_share must be within 0..1, not {spec.campaign_share!r}")
        if spec.campaign_share and topology.app.client.campaign is None:
            raise HarnessError(f"{where}: workload campaign_share needs campaigns, which the {topology.name} "
                               "stack's x-chaos.client does not declare")
        for field_name in ("drain_s", "late_bound_s"):
            value = getattr(self, field_name)
            if not number(value) or value < 0:
                raise HarnessError(f"{where}: {field_name} must be a non-negative number of seconds, not {value!r}")
        return schedule


@dataclass
class RunResult:
    scenario: Scenario
    verdict: Any  # harness.verdict.Verdict
    report_dir: Path
    seconds: float
    coverage: list[dict[str, Any]]
    answers: dict[str, int]
    missed: list[dict[str, Any]] = field(default_factory=list)  # schedule steps that took no effect
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (reset, workload, drain...)

    @property
    def overhead_s(self) -> float:
        """The harness's own time: the run's wall time minus the workload's duration (what the user asked for;
        the `workload` phase also holds a schedule that outlasts the workload, and its heals)."""
        return self.seconds - self.scenario.workload.duration_s

    @property
    def status(self) -> str:
        return self.verdict.status

    def violations(self) -> set[str]:
        return {name for name, r in self.verdict.results.items() if r.status == "invalid"}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "run"


def parked_ids(stack) -> list[str]:
    """Message ids the app parked (its stack file's `x-chaos.parked` queue), read without taking them:
    they are requeued on close. None declared: nothing is parked."""
    import pika

    queue = stack.topology.app.parked_queue
    if queue is None:
        return []
    params = pika.URLParameters(stack.amqp_url())
    params.socket_timeout = 10
    connection = pika.BlockingConnection(params)
    ids: list[str] = []
    try:
        channel = connection.channel()
        while True:
            method, props, _ = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            ids.append(props.message_id or "")
    finally:
        connection.close()  # unacked: the broker puts them back
    return [i for i in ids if i]


def run_scenario(stack, scenario: Scenario, report_root: str | Path, *, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> RunResult:
    from harness.checkers.facts import load_with_facts
    from harness.history import HistoryWriter
    from harness.healthwatch import HealthWatcher
    from harness.observer import DeliveryObserver
    from harness.progress import Ticker, progress_to
    from harness.runner import run_schedule
    from harness.verdict import check
    from harness.workload import Workload
    from stack.reset import reset_stack

    say = progress_to(progress)   # every line is logged (logger "harness"); progress gets it too
    schedule = scenario.validate(stack.topology)  # before touching anything
    report_dir = Path(report_root) / safe_name(scenario.name)
    # A report is one run: an earlier run's history must not be judged together with this one.
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.mkdir(parents=True)
    (report_dir / "scenario.json").write_text(json.dumps(scenario.to_data(), indent=2))
    schedule.save(report_dir / "schedule.json")
    started = time.monotonic()
    phases: dict[str, float] = {}
    say(f"[scenario] {scenario.name}: resetting the stack")
    reset_parts: dict[str, float] = {}
    phases["reset"] = reset_stack(stack, reset_parts)
    # why the reset took its full path ([] when nothing had disturbed the stack: stack/reset.py)
    reset_disturbances = list(getattr(stack, "last_disturbances", []))[:20]
    mark = time.monotonic()
    for node, env in scenario.deploy.items():
        say(f"[scenario] deploying {node} with {env}")
        stack.redeploy(node, env, wait=False)
    # A version that cannot start is the point of some scenarios: a deployed node that exits instead of
    # becoming ready is said and left so; the invariants judge what it did to the messages.
    for node, detail in stack.wait_healthy([stack.topology.node(n) for n in scenario.deploy],
                                           exited_ok=True).items():
        say(f"[scenario] {node} exited instead of becoming ready: {detail}")
    phases["deploy"], mark = time.monotonic() - mark, time.monotonic()
    app = stack.topology.app
    client, provider = app.client, app.provider
    api = f"http://127.0.0.1:{stack.host_port(client.node, client.port)}"
    sink = f"http://127.0.0.1:{stack.host_port(provider.node, provider.port)}"
    history_path = report_dir / "history.jsonl"
    spec = scenario.workload
    with HistoryWriter(history_path) as writer, HealthWatcher(stack, writer) as watcher:
        observer = DeliveryObserver(sink, writer)
        workload = Workload(api, writer, client=client, clients=spec.clients, rate=spec.rate, duration=spec.duration_s,
                            campaign_share=spec.campaign_share, campaign_size=spec.campaign_size, seed=seed,
                            run_id=f"{safe_name(scenario.name)[-20:]}-{seed}-{secrets.token_hex(3)}")
        watcher.start()  # what each service says of its health, for the `health` checker
        observer.start(interval_s=1.0)
        workload.start()
        mark = time.monotonic()
        try:
            with Ticker(lambda s: _workload_line(s, workload, observer), say):
                try:
                    report = run_schedule(stack, schedule, writer, progress=say)
                    coverage = report.coverage
                    missed = [r.to_data() for r in report.missed]
                finally:
                    workload.join(timeout=spec.duration_s + 60)
        finally:
            workload.stop()
            workload.join(timeout=30)
        phases["workload"], mark = time.monotonic() - mark, time.monotonic()
        answers = dict(workload.outcomes)
        observer.stop()
        say(f"[scenario] draining (up to {scenario.drain_s:.0f}s)")
        observer.record_parked(parked_ids(stack))
        accepted = workload.acknowledged_ids()
        with Ticker(lambda s: f"[drain +{s:.0f}s] {len(accepted - observer.delivered)} of "
                              f"{len(accepted)} accepted messages not delivered yet", say):
            missing = observer.drain(accepted, deadline_s=scenario.drain_s)
        say(f"[scenario] drained: {len(missing)} of {len(accepted)} accepted messages "
            "neither delivered nor parked")
        if missing:
            observer.record_parked(parked_ids(stack))
        watcher.stop()  # before the drain's end is judged; exiting the block stops it too
        observer.close()
    phases["drain"], mark = time.monotonic() - mark, time.monotonic()
    verdict = check(load_with_facts(history_path), late_bound_s=scenario.late_bound_s)
    phases["check"] = time.monotonic() - mark
    (report_dir / "verdict.json").write_text(verdict.to_json())
    (report_dir / "coverage.json").write_text(json.dumps(coverage, indent=2))
    mark = time.monotonic()
    _draw_report(report_dir, say)
    phases["report"] = time.monotonic() - mark
    seconds = time.monotonic() - started
    (report_dir / "timings.json").write_text(json.dumps({"seconds": round(seconds, 3), "phases": {
        k: round(v, 3) for k, v in phases.items()}, "reset_parts": {
        k: round(v, 3) for k, v in reset_parts.items()}, "reset_disturbances": reset_disturbances}, indent=2) + "\n")
    say(f"[scenario] {scenario.name}: {verdict.status} in {seconds:.0f}s (" + ", ".join(
        f"{k} {v:.1f}s" for k, v in phases.items()) + ")")
    return RunResult(scenario, verdict, report_dir, seconds, coverage, answers, missed, phases)


def _workload_line(seconds: float, workload, observer) -> str:
    answers = dict(workload.outcomes)
    return (f"[workload +{seconds:.0f}s] {sum(answers.values())} answered: "
            f"{answers.get('ok', 0)} accepted, {answers.get('fail', 0)} refused, "
            f"{answers.get('info', 0)} unknown; {len(observer.delivered)} delivered")


def _draw_report(report_dir: Path, say: Callable[[str], None]) -> None:
    """report.html beside the stored files; the verdict is already saved, so a page that cannot
    be drawn is said, not raised (`chaos-harness report DIR` draws it again)."""
    from reports.html import write_run_report

    try:
        say(f"[scenario] report: {write_run_report(report_dir)}")
    except Exception as exc:  # noqa: BLE001 - the run and its verdict stand without the page
        say(f"[scenario] report.html not drawn: {type(exc).__name__}: {exc}")


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise HarnessError(f"cannot read scenario file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, list):  # a bare schedule
        return Scenario(name=Path(path).stem, schedule=data)
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: not a scenario: expected a JSON object or a list of steps")
    try:
        return Scenario.from_data(data)
    except TypeError as exc:
        raise HarnessError(f"{path}: not a scenario: {exc}") from None
