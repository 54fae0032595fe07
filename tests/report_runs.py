"""A small run's report directory written the way `run_scenario` writes one (history, scenario,
schedule, coverage, verdict), with known numbers, for the report tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.history import Op, write_history
from harness.scenario import Scenario
from harness.verdict import check

T0 = 5_000_000_000          # monotonic ns of the first op
WALL0 = 1_700_000_000.0
NS = 1_000_000_000

SENDS = 100                 # m000..m099, one every 0.1 s from 0 s
REFUSED, UNKNOWN = "m010", "m011"
LOST = "m030"               # accepted at 3.01 s, never delivered
DUPLICATED = "m040"         # delivered by w0 #1 at 4.05 s and by w1 #2 at 5.0 s
# (step, fault, requested targets, hit targets, inject s, heal-ok s or None: never healed)
WINDOWS = [("1", "kill", ["workers"], ["worker1"], 2.0, 5.2),
           ("2", "partition", ["rabbitmq"], ["rmq1", "rmq2"], 7.0, None)]
DRAIN = (10.0, 10.5)


def _op(process: str, type_: str, f: str, value, s: float) -> Op:
    t = T0 + round(s * NS)
    return Op(process, type_, f, value, t, WALL0 + s)


def synthetic_ops() -> list[Op]:
    ops: list[Op] = []
    for i in range(SENDS):
        m, s = f"m{i:03d}", i / 10
        client = f"c{i % 4}"
        ops.append(_op(client, "invoke", "send", m, s))
        outcome = "fail" if m == REFUSED else "info" if m == UNKNOWN else "ok"
        ops.append(_op(client, outcome, "send", m, s + 0.01))
        if outcome == "ok" and m != LOST:
            ops.append(_op("sink", "ok", "deliver", {"id": m, "worker": f"w{i % 2}", "attempt": 1},
                           s + 0.05))
        if m == DUPLICATED:
            ops.append(_op("sink", "ok", "deliver", {"id": m, "worker": "w1", "attempt": 2}, 5.0))
    for step, fault, asked, _hit, start, end in WINDOWS:
        value = {"action": "inject", "step": step, "fault": fault, "params": {}, "targets": asked}
        ops.append(_op("nemesis", "invoke", "fault", value, start))
        ops.append(_op("nemesis", "ok", "fault", value, start + 0.1))
        if end is not None:
            heal = {**value, "action": "heal"}
            ops.append(_op("nemesis", "invoke", "fault", heal, end - 0.2))
            ops.append(_op("nemesis", "ok", "fault", heal, end))
    ops.append(_op("harness", "invoke", "drain", None, DRAIN[0]))
    ops.append(_op("harness", "ok", "drain", None, DRAIN[1]))
    return sorted(ops, key=lambda op: op.time)


def write_run(run_dir: Path, ops: list[Op] | None = None, *, seconds: float | None = 12.5,
              test: str = "tests/incidents/test_x.py::test_vulnerable",
              group: str = "Workers drop messages", variant: str = "vulnerable") -> Path:
    """A report directory as `run_scenario` leaves it, plus the plugin's run.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    history = run_dir / "history.jsonl"
    write_history(history, synthetic_ops() if ops is None else ops)
    schedule = [{"at": start, "fault": fault, "targets": asked,
                 "duration": None if end is None else end - start}
                for _step, fault, asked, _hit, start, end in WINDOWS]
    (run_dir / "scenario.json").write_text(json.dumps(
        Scenario(name=run_dir.name, schedule=schedule).to_data(), indent=2))
    (run_dir / "schedule.json").write_text(json.dumps({"steps": schedule}, indent=2))
    (run_dir / "coverage.json").write_text(json.dumps(
        [{"step": step, "fault": fault, "targets": hit, "roles": {}, "requested": asked,
          "healed": end is not None} for step, fault, asked, hit, _start, end in WINDOWS]))
    (run_dir / "verdict.json").write_text(check(synthetic_ops() if ops is None else ops).to_json())
    if seconds is not None:
        (run_dir / "run.json").write_text(json.dumps(
            {"test": test, "group": group, "variant": variant, "seconds": seconds}))
    return run_dir


def write_search(root: Path, tries: list[tuple[str, list[Op] | None, list[dict]]]) -> Path:
    """A search as harness.search leaves it: runs/<scenario>/ per schedule tried (name, ops,
    steps), in the order given, and found/<scenario>.json for the last one, the shrunk failure."""
    search = root / "search-reject-drop"
    for k, (name, ops, steps) in enumerate(tries):
        run_dir = write_run(search / "runs" / name, ops, seconds=None)
        (run_dir / "schedule.json").write_text(json.dumps({"steps": steps}))
        os.utime(run_dir / "scenario.json", ns=(10**18 + k * 10**9,) * 2)   # the order they ran
    (search / "found").mkdir()
    (search / "found" / f"{tries[-1][0]}.json").write_text("{}")
    (search / "hypothesis").mkdir()
    return search
