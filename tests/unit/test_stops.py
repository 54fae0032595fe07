"""Reading back how stopped containers ended, from a history as the runner writes it."""

from __future__ import annotations

import json

from harness.stops import stopped_containers, summary


def end(code, killed, seconds):
    return {"exit_code": code, "killed": killed, "seconds": seconds, "grace": 10, "was_running": True}


def test_stopped_containers_and_their_summary(tmp_path):
    ops = [
        {"process": "client-1", "type": "ok", "f": "send", "value": "m1", "time": 1},
        {"process": "nemesis", "type": "invoke", "f": "fault", "value": {"action": "inject", "fault": "deploy"}, "time": 2},
        {"process": "nemesis", "type": "ok", "f": "fault", "time": 3,
         "value": {"action": "inject", "fault": "rolling-deploy",
                   "effect": {"stopped": {"worker1": [end(0, False, 0.3)], "worker2": [end(143, False, 1.5)]}}}},
        {"process": "nemesis", "type": "ok", "f": "fault", "time": 4,
         "value": {"action": "heal", "fault": "restart", "effect": {"stopped": {"api": [end(137, True, 10.0)]}}}},
        {"process": "nemesis", "type": "ok", "f": "fault", "time": 5, "value": {"action": "heal", "fault": "kill",
                                                                                 "effect": {"targets": ["x"]}}},
    ]
    run = tmp_path / "run1"
    run.mkdir()
    (run / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    assert stopped_containers(run / "history.jsonl") == [
        ("rolling-deploy", "worker1", end(0, False, 0.3)), ("rolling-deploy", "worker2", end(143, False, 1.5)),
        ("restart", "api", end(137, True, 10.0))]
    assert summary([tmp_path]) == {"histories": 1, "stopped": 3, "exit_codes": {"0": 1, "137": 1, "143": 1},
                                   "killed": 1, "slowest_exit_s": 10.0}
