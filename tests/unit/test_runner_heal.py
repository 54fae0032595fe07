"""A heal that fails in its time stays active and is tried again at the end: the log says which try it
was, and the step's error names the failure once (no Docker)."""

from __future__ import annotations

import pytest

from faults.base import FAULTS
from faults.nodes import NodeFault
from harness.runner import Runner
from harness.schedule import Schedule
from stack.topology import RunParams, build_topology


class FakeStack:
    def __init__(self) -> None:
        self.topology = build_topology("small", RunParams(run_id="unit", cookie="x"))
        self.seed = 0


class _Stubborn(NodeFault):
    """Heals only at its `heals_at`-th try (0: never)."""

    name = "stubborn-for-test"
    summary = "a fault whose heal fails at first"
    heals_at = 2
    tries = 0

    def inject(self):
        return self.effect(self.resolve())

    def heal(self):
        type(self).tries += 1
        if type(self).tries != self.heals_at:
            raise RuntimeError("still there")
        return self.effect([])


@pytest.mark.parametrize("heals_at, last_line, healed", [
    (2, "healed stubborn-for-test at the second try, at the end", True),
    (0, "heal stubborn-for-test failed again, at the end: still there", False),
])
def test_a_failed_heal_is_tried_again_and_said_so(monkeypatch, heals_at, last_line, healed):
    monkeypatch.setitem(FAULTS, _Stubborn.name, _Stubborn)
    monkeypatch.setattr(_Stubborn, "heals_at", heals_at)
    monkeypatch.setattr(_Stubborn, "tries", 0)
    stack = FakeStack()
    schedule = Schedule.from_data([{"at": 0, "fault": _Stubborn.name, "targets": ["redis1"], "duration": 0.1}],
                                  stack.topology)
    lines: list[str] = []
    report = Runner(stack, schedule, progress=lines.append).run()
    heals = [line.split("] ", 1)[1] for line in lines if "heal" in line]
    assert heals == ["step 1: heal stubborn-for-test failed: still there", f"step 1: {last_line}"], lines
    assert report.all_healed is healed
    assert report.steps[0].error == "heal: still there"
