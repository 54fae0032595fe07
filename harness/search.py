"""Search for a fault schedule that breaks an invariant: generate, run, shrink, save, replay.

`search(stack, report_root, deploy=..., profile="ci", seed=0)` runs every schedule that
`harness.generate.schedules` draws as a short scenario on `stack` and requires a valid verdict. A run
costs real seconds, so verdicts are memoized by schedule value (Hypothesis's replays of a schedule never
run it twice) and shrinking is bounded in time per profile (past the bound, a schedule not yet run is
rejected instead of run, so Hypothesis keeps the smallest failure it has).

The last failure is the first thing the next search runs: the shrunk schedule is kept under the report
directory (`search-db/`, one entry per topology, deploy, faults, profile and seed) and handed to
Hypothesis as an explicit `@example`, which runs before anything is generated. Hypothesis's own example
database is not used: under `hypothesis.seed()` (reproducible generation) it is neither read nor
written. An entry whose schedule passes again is deleted. On failure the shrunk schedule is also saved
as a scenario file (with its deploy) that `pytest --chaos-replay FILE` and `chaos-harness replay FILE`
both run.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from harness.errors import HarnessError
from harness.scenario import RunResult, Scenario, WorkloadSpec, run_scenario
from harness.schedule import Schedule


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    shrink_seconds: float  # after the first failure, schedules not yet run are rejected instead of run
    workload: WorkloadSpec = WorkloadSpec(clients=3, rate=20.0, duration_s=10.0)
    drain_s: float = 12.0
    late_bound_s: float = 12.0
    # The schedules' shape (harness.generate.schedules): steps, last inject, longest fault, and whether
    # the long faults (partitions, deploys, rolling restarts: `Fault.short = False`) are drawn.
    max_steps: int = 3
    max_at_s: int = 8
    max_duration_s: int = 8
    long_faults: bool = False

    def schedules(self, topology, faults: Iterable[str] | None = None):
        from harness.generate import schedules

        return schedules(topology, faults, max_steps=self.max_steps, max_at=self.max_at_s,
                         max_duration=self.max_duration_s, long_faults=self.long_faults)


PROFILES = {
    # CI time matters: a few short schedules of short faults.
    "ci": Profile("ci", max_examples=5, shrink_seconds=150.0),
    # Up to 10 steps over 60 s (the last inject by 45 s, each fault up to 15 s), every fault of the
    # registry, while the workload runs the whole minute.
    "nightly": Profile("nightly", max_examples=200, shrink_seconds=3600.0,
                       workload=WorkloadSpec(clients=3, rate=20.0, duration_s=60.0), drain_s=45.0,
                       late_bound_s=30.0,  # a partition of up to 15 s may hold messages back that long
                       max_steps=10, max_at_s=45, max_duration_s=15, long_faults=True),
}


@dataclass
class SearchResult:
    profile: str
    seed: int
    runs: list[RunResult] = field(default_factory=list)  # one per distinct schedule, in order
    errors: list[tuple[Schedule, str]] = field(default_factory=list)  # schedules the harness could not run
    failure: RunResult | None = None  # the shrunk failing run
    scenario_file: Path | None = None
    seconds: float = 0.0
    found_after_s: float | None = None  # seconds until the first failing schedule
    replayed: Schedule | None = None  # the saved failure this search ran first, if any

    @property
    def schedule(self) -> Schedule | None:
        return None if self.failure is None else Schedule.from_data(self.failure.scenario.schedule)

    def replay_commands(self) -> list[str]:
        if self.scenario_file is None:
            return []
        quoted = shlex.quote(str(self.scenario_file))
        return [f"pytest --chaos-replay {quoted}", f"chaos-harness replay {quoted}"]

    def summary(self) -> str:
        head = (f"search ({self.profile}, seed {self.seed}): {len(self.runs)} schedule(s) run in "
                f"{self.seconds:.0f}s")
        # A valid verdict over steps that took no effect proves less: say how many runs had such steps.
        missed = sum(1 for r in self.runs if getattr(r, "missed", None))
        head += f" ({missed} with steps that took no effect)" if missed else ""
        if self.failure is None:
            return head + ": every verdict valid" + (f", {len(self.errors)} not runnable" if self.errors else "")
        lines = [head + f": {self.failure.status} after shrinking",
                 f"schedule: {json.dumps(self.failure.scenario.schedule)}",
                 self.failure.verdict.summary(), f"saved: {self.scenario_file}", "replay with:"]
        return "\n".join(lines + [f"  {c}" for c in self.replay_commands()])


class ScheduleFailed(AssertionError):
    """A generated schedule's verdict was not valid (what Hypothesis shrinks)."""


def schedule_key(schedule: Schedule) -> str:
    return hashlib.sha256(json.dumps(schedule.to_data(), sort_keys=True).encode()).hexdigest()[:12]


def saved_failure_path(root: Path, topology: str, deploy, faults, profile: str, seed: int) -> Path:
    """Where the last failure of this search (same topology, deploy, faults, profile, seed) is kept."""
    key = json.dumps([topology, deploy, faults, profile, seed], sort_keys=True)
    return root / "search-db" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def load_saved_failure(path: Path, topology, say: Callable[[str], None]) -> Schedule | None:
    if not path.exists():
        return None
    try:
        return Schedule.from_data(json.loads(path.read_text()), topology)
    except (OSError, ValueError, HarnessError) as exc:  # written by another version: start afresh
        say(f"[search] ignoring saved failure {path}: {exc}")
        path.unlink(missing_ok=True)
        return None


def search(stack, report_root: str | Path, *, deploy: dict[str, dict[str, str]] | None = None,
           profile: str | Profile = "ci", seed: int = 0, faults: Iterable[str] | None = None,
           progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search schedules on `stack` (reset before each run) with `deploy`; see the module docstring."""
    from hypothesis import HealthCheck, Phase, example, given, reject, settings
    from hypothesis import seed as hypothesis_seed

    prof = PROFILES[profile] if isinstance(profile, str) and profile in PROFILES else profile
    if not isinstance(prof, Profile):
        raise HarnessError(f"unknown search profile {profile!r} (known: {', '.join(PROFILES)})")
    say = progress or (lambda line: None)
    deploy = dict(deploy or {})
    faults = None if faults is None else list(faults)
    root = Path(report_root)
    root.mkdir(parents=True, exist_ok=True)
    result = SearchResult(prof.name, seed)
    memo: dict[str, RunResult | str] = {}
    shrunk: list[RunResult] = []
    started = time.monotonic()
    shrink_until: list[float] = []  # set at the first failure
    saved_path = saved_failure_path(root, stack.topology.name, deploy, faults, prof.name, seed)
    saved = load_saved_failure(saved_path, stack.topology, say)

    def scenario_for(schedule: Schedule) -> Scenario:
        return Scenario(name=f"generated-{schedule_key(schedule)}", schedule=schedule.to_data(), deploy=deploy,
                        workload=prof.workload, drain_s=prof.drain_s, late_bound_s=prof.late_bound_s)

    def verdict_of(schedule: Schedule) -> RunResult | str | None:
        """The schedule's run (memoized), a string if it could not run, None if past the shrink time."""
        key = schedule_key(schedule)
        if key not in memo and shrink_until and time.monotonic() > shrink_until[0]:
            return None
        if key not in memo:
            say(f"[search] run {len(memo) + 1}: {json.dumps(schedule.to_data()['steps'])}")
            try:
                run = run_scenario(stack, scenario_for(schedule), root / "runs", seed=seed, progress=say)
            except HarnessError as exc:  # the harness could not apply it: not a verdict about the system
                memo[key] = str(exc)
                result.errors.append((schedule, str(exc)))
                say(f"[search] not runnable: {exc}")
            else:
                memo[key] = run
                result.runs.append(run)
                if run.status != "valid" and result.found_after_s is None:
                    result.found_after_s = time.monotonic() - started
                    shrink_until.append(time.monotonic() + prof.shrink_seconds)
                say(f"[search] verdict {run.status} {sorted(run.violations()) or ''}")
        return memo[key]

    def schedule_is_valid(schedule: Schedule) -> None:
        run = verdict_of(schedule)
        if run is None or isinstance(run, str):
            reject()
        if run.status != "valid":
            shrunk.append(run)  # Hypothesis's last call is its final replay of the shrunk schedule
            raise ScheduleFailed(f"verdict {run.status}: {sorted(run.violations())}")

    test = given(prof.schedules(stack.topology, faults))(schedule_is_valid)
    if saved is not None:
        say(f"[search] first: the saved failure {json.dumps(saved.to_data()['steps'])}")
        result.replayed = saved
        test = example(saved)(test)  # Phase.explicit runs it before anything is generated
    test = settings(max_examples=prof.max_examples, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None, derandomize=False,
                    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no explain: it runs more
                    report_multiple_bugs=False, print_blob=False)(test)
    test = hypothesis_seed(seed)(test)
    try:
        test()
    except ScheduleFailed:
        result.failure = shrunk[-1]
    if result.schedule is not None and len(result.schedule.steps) > 1:
        shrink_until[:] = [time.monotonic() + prof.shrink_seconds]  # the drop pass has a bound of its own
        result.failure = _drop_redundant_steps(result.schedule, result.failure, verdict_of, prof.shrink_seconds, say)
    result.seconds = time.monotonic() - started
    if result.failure is not None:
        result.scenario_file = save_failure(result.failure, root)
        saved_path.parent.mkdir(parents=True, exist_ok=True)
        saved_path.write_text(json.dumps(result.failure.scenario.schedule) + "\n")
    elif saved is not None:
        saved_path.unlink(missing_ok=True)  # it passes now: the next search starts afresh
    say(result.summary())
    return result


def _drop_redundant_steps(schedule: Schedule, failure: RunResult,
                          verdict_of: Callable[[Schedule], RunResult | str | None],
                          seconds: float, say: Callable[[str], None]) -> RunResult:
    """Hypothesis's shrink can keep a redundant step: try the schedule without each step (memoized runs,
    bounded by the profile's shrink time) and keep the shortest one that still fails."""
    from harness.generate import drop_steps

    deadline = time.monotonic() + seconds

    def fails(schedule: Schedule) -> bool:
        if time.monotonic() > deadline:
            return False
        run = verdict_of(schedule)
        return isinstance(run, RunResult) and run.status != "valid"

    shortest = drop_steps(schedule, fails)
    if shortest is schedule:
        return failure
    say(f"[search] dropped {len(schedule.steps) - len(shortest.steps)} redundant step(s)")
    run = verdict_of(shortest)
    assert not isinstance(run, str)
    return run


def save_failure(run: RunResult, root: Path) -> Path:
    """The failing schedule as a scenario file (its deploy, workload and bounds), outside any run's directory."""
    scenario = replace(run.scenario, name=f"{run.scenario.name}-replay")
    path = root / "found" / f"{run.scenario.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario.to_data(), indent=2) + "\n")
    return path
