"""Checkers and verdict on small hand-written histories: statuses, counts, examples, windows,
the summary a tester reads, the JSON, and `check_file`'s exit codes."""

from __future__ import annotations

import io
import itertools
import json

import pytest

from harness import history as history_module
from harness.checkers import (check_duplicated, check_late, check_lost, check_parked,
                              check_recovered, check_unexpected, facts_of)
from harness.checkers.facts import load_with_facts
from harness.errors import HarnessError
from harness.history import Op, campaign_message_id, write_history
from harness.verdict import check, check_file

S = 1_000_000_000


class Run:
    """A tiny history builder: times in seconds."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, process, type_, f, value, t):
        self.ops.append(Op(process, type_, f, value, round(t * S), 1.7e9 + t))
        return self

    def send(self, m, t, outcome="ok", answered=None):
        self.add("c1", "invoke", "send", m, t)
        if outcome:
            self.add("c1", outcome, "send", m, t if answered is None else answered)
        return self

    def deliver(self, m, t, worker="w1", attempt=1):
        return self.add("sink", "ok", "deliver", {"id": m, "worker": worker, "attempt": attempt}, t)

    def fault(self, step, start, end=None, fault="kill-worker"):
        value = {"step": step, "fault": fault, "params": {"signal": "KILL"}, "targets": ["w1"]}
        self.add("nemesis", "invoke", "fault", {**value, "action": "inject"}, start)
        self.add("nemesis", "ok", "fault", {**value, "action": "inject"}, start)
        if end is not None:
            self.add("nemesis", "invoke", "fault", {**value, "action": "heal"}, end)
            self.add("nemesis", "ok", "fault", {**value, "action": "heal"}, end)
        return self

    def drain(self, t):
        return self.add("harness", "invoke", "drain", None, t).add("harness", "ok", "drain", None, t)


def test_exactly_once_is_valid_with_latency_measured():
    run = Run().send("a", 0).deliver("a", 0.5).send("b", 1).deliver("b", 3).drain(10)
    v = check(run.ops)
    assert v.status == "valid" and v.exit_code == 0
    late = v.results["late"]
    assert late.measures["p50_s"] == 0.5 and late.measures["max_s"] == 2.0
    assert "latency: p50 0.500s" in v.summary()


def test_lost_is_invalid_after_a_drain_and_unknown_without_one():
    run = Run().send("a", 0).send("b", 1).deliver("a", 2)
    assert check_lost(run.ops).status == "unknown"
    assert check(run.ops).exit_code == 2
    assert "(no completed drain: the missing ones may still be in flight)" in check(run.ops).summary()
    run.drain(5)
    lost = check_lost(run.ops)
    assert (lost.status, lost.counts["lost"], lost.ids) == ("invalid", 1, {"b"})


def test_nothing_acknowledged_proves_nothing():
    run = Run().send("a", 0, outcome="fail").drain(5)
    assert check(run.ops).status == "unknown"
    assert "nothing was acknowledged" in check(run.ops).summary()
    assert check([]).status == "unknown"


def test_stuck_is_lost_while_the_stack_was_healthy():
    run = (Run().fault("s1", 0, 5).send("during", 1).send("after", 10).drain(60))
    lost = check_lost(run.ops)
    assert lost.ids == {"during", "after"} and lost.counts["stuck"] == 1
    by_id = {o.id: o for o in lost.examples}
    assert by_id["after"].detail.startswith("stuck") and by_id["after"].windows == ()
    assert by_id["during"].detail == "" and by_id["during"].windows == ("s1",)


def test_a_later_fault_means_not_stuck():
    run = Run().send("a", 0).fault("s1", 10, 20).drain(60)
    assert check_lost(run.ops).counts["stuck"] == 0


def test_parked_is_not_lost_but_listed():
    run = Run().send("a", 0).send("b", 0).add("dlq", "ok", "park", "b", 3).drain(9)
    assert check_lost(run.ops).ids == {"a"}
    parked = check_parked(run.ops)
    assert parked.status == "valid" and parked.ids == {"b"}
    assert parked.counts == {"parked": 1, "acknowledged": 1, "delivered": 0}


def test_duplicates_are_violations_with_workers_and_attempts():
    run = Run().send("a", 0).deliver("a", 1, "w1", 1).deliver("a", 2, "w2", 2).drain(9)
    dup = check_duplicated(run.ops)
    assert dup.status == "invalid" and dup.counts["extra_deliveries"] == 1
    assert dup.examples[0].detail == "delivered 2x: w1#1, w2#2"


def test_unexpected_deliveries_are_violations():
    run = Run().send("a", 0).deliver("a", 1).deliver("ghost", 2).drain(9)
    assert check_unexpected(run.ops).ids == {"ghost"}
    assert check(run.ops).status == "invalid"


def test_recovered_unknown_and_refused_outcomes_are_reported_not_violations():
    run = (Run().send("i", 0, outcome="info").send("f", 0, outcome="fail")
           .send("n", 0, outcome=None).send("ok", 0)
           .deliver("i", 1).deliver("f", 1).deliver("ok", 1).drain(9))
    rec = check_recovered(run.ops)
    assert rec.status == "valid" and rec.ids == {"i", "f"}
    assert rec.counts["recovered_refused"] == 1 and rec.counts["unknown_outcome"] == 2
    assert check(run.ops).status == "valid"


def test_late_counts_from_the_heal_of_the_faults_it_waited_through():
    run = (Run().fault("p", 5, 100)
           .send("waited", 10).deliver("waited", 120)      # 20s after the heal: on time
           .send("slow", 200).deliver("slow", 240)         # 40s after its ack: late
           .send("before", 0, answered=1).deliver("before", 50)  # pending across p: heal at 100
           .drain(300))
    late = check_late(run.ops, late_bound_s=30)
    assert late.ids == {"slow"} and late.status == "invalid"
    assert late.examples[0].detail == "delivered 40.0s after its acknowledgement"
    assert check_late(run.ops, late_bound_s=45).ids == set()


def test_an_unhealed_fault_suspends_lateness():
    run = Run().send("a", 0).fault("p", 1).deliver("a", 500).drain(600)
    assert check_late(run.ops, late_bound_s=30).ids == set()


def test_campaigns_acknowledge_every_derived_id():
    ids = [campaign_message_id("k1", r) for r in ("u1", "u2", "u3")]
    run = (Run().add("c1", "invoke", "campaign", {"campaign": "k1", "ids": ids}, 0)
           .add("c1", "ok", "campaign", {"campaign": "k1", "ids": ids}, 1)
           .deliver(ids[0], 2).deliver(ids[1], 2).drain(9))
    assert check_lost(run.ops).ids == {"k1:u3"}
    assert check_unexpected(run.ops).ids == set()


def test_fault_windows_pair_inject_and_heal_by_step():
    run = Run().fault(1, 0, 5).fault(2, 3).send("a", 10)
    windows = facts_of(run.ops).windows
    assert [(w.step, w.start, w.end) for w in windows] == [("1", 0, 5 * S), ("2", 3 * S, None)]
    assert windows[0].params == {"signal": "KILL"} and windows[0].targets == ("w1",)


def test_examples_are_the_first_ten_in_send_order():
    run = Run()
    for i in range(25, 0, -1):
        run.send(f"m{i:02d}", i)
    run.drain(100)
    lost = check_lost(run.ops)
    assert [o.id for o in lost.examples] == [f"m{i:02d}" for i in range(1, 11)]
    assert lost.counts["lost"] == 25 and len(lost.ids) == 25


@pytest.mark.parametrize("bad", [
    Op("sink", "ok", "deliver", "not-a-dict", 1, 0.0),
    Op("c1", "invoke", "send", {"id": "x"}, 1, 0.0),
    Op("c1", "invoke", "campaign", "k1", 1, 0.0),
    Op("nemesis", "invoke", "fault", {"step": 1}, 1, 0.0),
    Op("dlq", "ok", "park", 7, 1, 0.0),
])
def test_values_that_break_the_conventions_raise_harness_errors(bad):
    with pytest.raises(HarnessError, match="history op 2"):
        check(Run().send("a", 0, outcome=None).ops + [bad])


def test_summary_names_the_invariant_counts_ids_and_windows():
    run = Run().fault("kill-1", 1, 4).send("a", 2).send("b", 10).deliver("b", 11).drain(20)
    text = check(run.ops).summary()
    assert text.splitlines()[0] == "verdict: INVALID (11 ops, drained)"
    assert "lost: invalid - every acknowledged message is delivered" in text
    assert "acknowledged 2, lost 1" in text
    assert "  a during faults kill-1" in text
    assert "fault windows: kill-1 kill-worker [0.00s..3.00s]" in text


def test_json_is_complete_and_parseable():
    run = Run().fault("s", 1, 4).send("a", 2).deliver("a", 3).deliver("a", 3.5).drain(9)
    data = json.loads(check(run.ops).to_json())
    assert data["status"] == "invalid" and data["drained"] is True
    assert data["windows"] == [{"step": "s", "fault": "kill-worker", "targets": ["w1"],
                                "params": {"signal": "KILL"}, "start_s": 0.0, "end_s": 3.0}]
    dup = data["results"]["duplicated"]
    assert dup["examples"] == [{"id": "a", "windows": ["s"], "detail": "delivered 2x: w1#1, w1#1"}]


@pytest.mark.parametrize("run, code", [
    (Run().send("a", 0).deliver("a", 1).drain(2), 0),
    (Run().send("a", 0).drain(2), 1),
    (Run().send("a", 0), 2),
])
def test_check_file_prints_the_summary_and_returns_the_exit_code(tmp_path, run, code):
    path, out_json = tmp_path / "h.jsonl", tmp_path / "verdict.json"
    write_history(path, run.ops)
    out = io.StringIO()
    assert check_file(path, out=out, json_out=out_json) == code
    assert out.getvalue().startswith("verdict: ")
    assert json.loads(out_json.read_text())["status"] == ["valid", "invalid", "unknown"][code]


def test_check_file_on_a_missing_or_bad_file_raises_harness_error(tmp_path):
    with pytest.raises(HarnessError, match="no history file"):
        check_file(tmp_path / "missing.jsonl", out=io.StringIO())
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(HarnessError, match="bad.jsonl:1"):
        check_file(bad, out=io.StringIO())


BAD_OPS = [Op("sink", "ok", "deliver", "not-a-dict", 1, 0.0),
           Op("c1", "invoke", "send", {"id": "x"}, 1, 0.0),
           Op("c1", "invoke", "campaign", "k1", 1, 0.0),
           Op("dlq", "ok", "park", 7, 1, 0.0)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(BAD_OPS)))))
def test_loading_with_facts_raises_the_first_error_a_whole_pass_raises(tmp_path, order):
    # a bad send comes first whatever its place, then the first bad campaign/park, then a
    # bad delivery: facts derived block by block while loading must agree
    ops = [o for k in order for o in (*Run().send(f"m{k}", k).ops, BAD_OPS[k])]
    path = tmp_path / "h.jsonl"
    write_history(path, ops)
    with pytest.raises(HarnessError) as whole:
        facts_of(ops)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history_module, "_CHUNK_CHARS", 100)
        history = load_with_facts(path)   # loads; the error comes with the facts
    with pytest.raises(HarnessError) as blocks:
        check(history)
    assert str(blocks.value) == str(whole.value)
