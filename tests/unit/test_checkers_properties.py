"""Generated histories with known injected anomalies: each checker finds exactly those, nothing
on exactly-once histories, and agrees with a brute-force reference checker."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest
from pytest import MonkeyPatch

from harness import history as history_module
from harness.checkers import facts_of
from harness.checkers.facts import FactsBuilder, load_with_facts
from harness.checkers.lost import stuck_ids
from harness.errors import HarnessError
from harness.history import (History, Op, _ScannedHistory, campaign_message_id, load_history,
                             write_history)
from tests.native import both_ways, require_native
from harness.verdict import check

S = 1_000_000_000
BOUND_S = 30.0
SEND_END = 100 * S                       # every send and closed fault window is before...
WINDOW_END = 130 * S
LATE_AT = WINDOW_END + int(BOUND_S * S) + 5 * S   # ...so a delivery after this is surely late
OPEN_AT = LATE_AT + 100 * S              # a never-healed fault starts after every delivery
DRAIN_AT = OPEN_AT + 10 * S

FATES = ["once", "twice", "thrice", "never", "parked", "parked_then_delivered", "late"]


@dataclass
class Scenario:
    ops: list[Op]
    expected: dict[str, set[str]] = field(default_factory=dict)
    status: str = "valid"


Q = S // 2  # times are multiples of Q, so that instants coincide and boundaries get tested


def ts(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo // Q, hi // Q).map(lambda k: k * Q)


def op(process, type_, f, value, t):
    return Op(process, type_, f, value, t, 1.7e9 + t / S)


@st.composite
def scenarios(draw, exactly_once: bool = False, free: bool = False) -> Scenario:
    """A history and what the checkers must find in it. `free`: late deliveries and a
    never-healed fault land anywhere (expectations are then left to the reference)."""
    ops: list[Op] = []
    windows = draw(st.lists(st.tuples(ts(0, SEND_END), ts(0, 30 * S),
                                      st.sampled_from(["ok", "info"])), max_size=3))
    for step, (start, length, heal_type) in enumerate(windows):
        value = {"step": step, "fault": "kill", "params": {}, "targets": ["w1"]}
        inject, heal = {**value, "action": "inject"}, {**value, "action": "heal"}
        ops += [op("nemesis", "invoke", "fault", inject, start),
                op("nemesis", "ok", "fault", inject, start),
                op("nemesis", "invoke", "fault", heal, start + length),
                op("nemesis", heal_type, "fault", heal, start + length)]
    open_window = not exactly_once and draw(st.booleans())
    if open_window:
        ops.append(op("nemesis", "invoke", "fault",
                      {"action": "inject", "step": "open", "fault": "partition"},
                      draw(ts(0, OPEN_AT)) if free else OPEN_AT))

    outcomes = st.just("ok") if exactly_once else st.sampled_from(["ok", "fail", "info", None])
    fates = st.just("once") if exactly_once else st.sampled_from(FATES)
    campaigns = draw(st.lists(st.tuples(ts(0, SEND_END), outcomes), max_size=2))
    n = draw(st.integers(1 if exactly_once else 0, 20))
    acked: dict[str, int] = {}
    invoked: dict[str, int] = {}
    fate_of: dict[str, str] = {}
    members: dict[int, list[str]] = {}
    for i in range(n):
        via = draw(st.integers(-1, len(campaigns) - 1))
        if via < 0:
            m, sent = f"m{i}", draw(ts(0, SEND_END))
            outcome = draw(outcomes)
            ops.append(op(f"c{i % 3}", "invoke", "send", m, sent))
            answered = sent + draw(ts(0, S))
            if outcome is not None:
                ops.append(op(f"c{i % 3}", outcome, "send", m, answered))
        else:
            m = campaign_message_id(f"k{via}", f"u{i}")
            members.setdefault(via, []).append(m)
            sent, outcome = campaigns[via]
            answered = sent + S // 2
        invoked[m] = sent
        if outcome == "ok":
            acked[m] = answered
        fate_of[m] = fate = draw(fates)
        ack_or_send = answered
        if fate in ("once", "twice", "thrice", "parked_then_delivered"):
            first = ack_or_send + draw(ts(0, int(BOUND_S * S) - 1))
            times = [first] + [first + draw(ts(0, 10 * S))
                               for _ in range({"twice": 1, "thrice": 2}.get(fate, 0))]
        elif fate == "late":
            times = [draw(ts(0, LATE_AT)) if free else LATE_AT + draw(ts(Q, 10 * S))]
        else:
            times = []
        for k, t in enumerate(times):
            ops.append(op("sink", "ok", "deliver", {"id": m, "worker": f"w{k}", "attempt": k + 1}, t))
        if fate.startswith("parked"):
            ops.append(op("dlq", "ok", "park", m, ack_or_send + 2 * S))
    for j, (sent, outcome) in enumerate(campaigns):
        value = {"campaign": f"k{j}", "ids": members.get(j, [])}
        ops.append(op("c9", "invoke", "campaign", value, sent))
        if outcome is not None:
            ops.append(op("c9", outcome, "campaign", value, sent + S // 2))

    unexpected = {} if exactly_once else draw(
        st.dictionaries(st.sampled_from(["x0", "x1", "x2"]), st.integers(1, 2), max_size=3))
    for x, times in unexpected.items():
        for k in range(times):
            ops.append(op("sink", "ok", "deliver", {"id": x, "worker": "w9", "attempt": k + 1},
                          draw(ts(0, WINDOW_END))))
    drained = exactly_once or draw(st.booleans())
    if drained:
        ops += [op("harness", "invoke", "drain", None, DRAIN_AT),
                op("harness", "ok", "drain", None, DRAIN_AT + S)]

    ops.sort(key=lambda o: o.time)
    if not exactly_once and draw(st.booleans()):
        # the observer may record deliveries late and out of time order
        deliveries = [o for o in ops if o.f == "deliver"]
        ops = [o for o in ops if o.f != "deliver"] + draw(st.permutations(deliveries))

    delivered = {m for m, fate in fate_of.items() if fate not in ("never", "parked")}
    lost = {m for m in acked if fate_of[m] in ("never",)}
    closed_before = max((start + length for start, length, _ in windows), default=-1)
    expected = {
        "lost": lost,
        "stuck": set() if open_window else {m for m in lost if invoked[m] > closed_before},
        "duplicated": {m for m, f in fate_of.items() if f in ("twice", "thrice")}
                      | {x for x, k in unexpected.items() if k > 1},
        "unexpected": set(unexpected),
        "late": {m for m in acked if fate_of[m] == "late"},
        "recovered": {m for m in delivered if m not in acked},
        "parked": {m for m, f in fate_of.items() if f.startswith("parked")},
        "health": set(),  # no service health in these histories (tests/unit/test_health_checker.py)
        "availability": set(),  # a measure: it names no message
    }
    violated = expected["duplicated"] or expected["unexpected"] or expected["late"]
    status = ("invalid" if violated or (lost and drained)
              else "unknown" if lost or not acked else "valid")
    return Scenario(ops, expected, status)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_each_checker_finds_exactly_the_injected_anomalies(scenario):
    verdict = check(scenario.ops, late_bound_s=BOUND_S)
    found = {name: set(r.ids) for name, r in verdict.results.items()}
    found["stuck"] = stuck_ids(facts_of(scenario.ops), found["lost"])
    assert found == scenario.expected
    assert verdict.status == scenario.status
    for name, r in verdict.results.items():
        assert len(r.examples) == min(10, len(r.ids))
        assert {o.id for o in r.examples} <= r.ids


@settings(max_examples=100, deadline=None)
@given(scenarios(exactly_once=True))
def test_exactly_once_histories_are_valid(scenario):
    verdict = check(scenario.ops, late_bound_s=BOUND_S)
    assert verdict.status == "valid", verdict.summary()
    assert all(not r.ids for r in verdict.results.values())


# --- a brute-force reference: slow, obvious, built on the op list only ---------------------

def reference(ops: list[Op], bound_s: float) -> tuple[dict[str, set[str]], str, dict]:
    def times(f, type_, pred):
        return [o.time for o in ops if o.f == f and o.type == type_ and pred(o.value)]

    ids = set()
    for o in ops:
        if o.f in ("send", "park"):
            ids.add(o.value)
        elif o.f == "campaign":
            ids.update(o.value["ids"])
        elif o.f == "deliver":
            ids.add(o.value["id"])

    def invoked(m):
        ts = times("send", "invoke", lambda v: v == m) + times(
            "campaign", "invoke", lambda v: m in v["ids"])
        return min(ts) if ts else None

    def acked(m):
        ts = times("send", "ok", lambda v: v == m) + times(
            "campaign", "ok", lambda v: m in v["ids"])
        return min(ts) if ts else None

    def deliveries(m):
        return sorted(times("deliver", "ok", lambda v: v["id"] == m))

    def parked(m):
        return bool(times("park", "ok", lambda v: v == m))

    def refused(m):
        answers = {o.type for o in ops if o.type != "invoke" and (
            (o.f == "send" and o.value == m) or (o.f == "campaign" and m in o.value["ids"]))}
        return answers == {"fail"}

    windows = []
    for k, o in enumerate(ops):
        if o.f == "fault" and o.type == "invoke" and o.value["action"] == "inject":
            heal = next((h.time for h in ops[k:] if h.f == "fault" and h.type in ("ok", "info")
                         and h.value["action"] == "heal"
                         and str(h.value["step"]) == str(o.value["step"])), None)
            windows.append((o.time, heal))

    def overlapping(start, end):
        return [w for w in windows if w[0] <= end and (w[1] is None or w[1] >= start)]

    drained = any(o.f == "drain" and o.type == "ok" for o in ops)
    result = {name: set() for name in
              ("lost", "stuck", "duplicated", "unexpected", "late", "recovered", "parked",
               "recovered_refused", "health", "availability")}  # no health ops; availability names no id
    latencies = []
    for m in ids:
        ds = deliveries(m)
        if len(ds) > 1:
            result["duplicated"].add(m)
        if ds and invoked(m) is None:
            result["unexpected"].add(m)
        if parked(m):
            result["parked"].add(m)
        if invoked(m) is not None and acked(m) is None and ds:
            result["recovered"].add(m)
            if refused(m):
                result["recovered_refused"].add(m)
        if acked(m) is not None and not ds and not parked(m):
            result["lost"].add(m)
            if all(end is not None and end < invoked(m) for _, end in windows):
                result["stuck"].add(m)
        if acked(m) is not None and ds:
            latencies.append(max(0, ds[0] - acked(m)))
            around = overlapping(invoked(m), ds[0])
            if all(end is not None for _, end in around):
                start = max([acked(m)] + [end for _, end in around])
                if ds[0] - start > bound_s * S:
                    result["late"].add(m)
    violated = result["duplicated"] or result["unexpected"] or result["late"]
    acked_any = any(acked(m) is not None for m in ids)
    status = ("invalid" if violated or (result["lost"] and drained)
              else "unknown" if result["lost"] or not acked_any else "valid")
    latencies.sort()

    def pct(q):
        return latencies[max(0, math.ceil(q * len(latencies)) - 1)] / S if latencies else None

    return result, status, {"p50_s": pct(0.5), "p99_s": pct(0.99),
                            "max_s": latencies[-1] / S if latencies else None}


@settings(max_examples=150, deadline=None)
@given(scenarios(free=True), st.sampled_from([0.5, 5.0, BOUND_S, 60.0]))
def test_checkers_agree_with_the_brute_force_reference(scenario, bound_s):
    verdict = check(scenario.ops, late_bound_s=bound_s)
    expected, status, measures = reference(scenario.ops, bound_s)
    found = {name: set(r.ids) for name, r in verdict.results.items()}
    found["stuck"] = stuck_ids(facts_of(scenario.ops), found["lost"])
    found["recovered_refused"] = {o.id for o in verdict.results["recovered"].examples
                                  if "outcome fail" in o.detail}
    if len(expected["recovered"]) <= 10:
        assert verdict.results["recovered"].counts["recovered_refused"] == len(
            expected["recovered_refused"])
    else:
        found["recovered_refused"] = expected["recovered_refused"]  # only 10 examples listed
    assert found == expected
    assert verdict.status == status
    late = verdict.results["late"].measures
    assert {k: late[k] for k in measures} == measures


@settings(max_examples=150, deadline=None)
@given(scenarios(free=True), st.integers(1, 40), st.randoms(use_true_random=False))
def test_facts_derived_block_by_block_are_the_facts_of_the_whole(scenario, block, rnd):
    ops = list(scenario.ops)
    rnd.shuffle(ops)   # any op order, e.g. deliveries read late, duplicated invokes
    whole = facts_of(ops)
    builder, history = FactsBuilder(), History()
    for start in range(0, len(ops), block):
        part = History(ops[start:start + block])
        history._extend_columns([part.process, part.type, part.f, part.value, part.time,
                                 part.wall])
        builder.add(history, start)
    assert builder.facts(history) == whole


@settings(max_examples=50, deadline=None)
@given(scenarios(free=True), st.integers(60, 2000))
def test_loading_with_facts_judges_like_loading_then_checking(tmp_path_factory, scenario,
                                                              chunk_chars):
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    write_history(path, scenario.ops)
    with MonkeyPatch.context() as mp:
        mp.setattr(history_module, "_CHUNK_CHARS", chunk_chars)
        assert check(load_with_facts(path)).to_dict() == check(load_history(path)).to_dict()


# The compiled scanner (harness/native) derives the facts of sends, deliveries and campaigns
# itself: it must agree with the Python path on every history, whatever the lines' layout.

def write_laid_out(path, ops: list[Op], rnd) -> None:
    """ops as JSONL with each line's keys in random order, random spacing and escaping, some
    extra fields, and some keys given twice (json keeps the last)."""
    lines = []
    for o in ops:
        d = o.to_dict()
        keys = list(d)
        rnd.shuffle(keys)
        if rnd.random() < 0.2:
            keys.insert(rnd.randrange(len(keys) + 1), "extra")
            d["extra"] = {"nested": [1, "x", None]}
        sep = rnd.choice([(",", ":"), (", ", ": "), (" ,\t", " :\r")])
        text = json.dumps({k: d[k] for k in keys}, separators=sep,
                          ensure_ascii=rnd.random() < 0.5)
        if rnd.random() < 0.2:   # a first "f" or "value" overridden by the real one later
            text = '{"f": "decoy", "value": [1], ' + text[1:]
        lines.append(rnd.choice(["", " ", "\t"]) + text + rnd.choice(["", " ", "\r"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")


def judged_both_ways(path, bound_s, block):
    require_native()
    with MonkeyPatch.context() as mp:
        mp.setattr(history_module, "_NATIVE_BLOCK", block)   # lines cut across blocks
        native = load_with_facts(path)
        assert isinstance(native, _ScannedHistory), "the compiled scanner refused a plain file"
        mp.setattr(history_module, "_native", None)
        python = load_with_facts(path)
    return (native, facts_of(native), check(native, late_bound_s=bound_s),
            python, facts_of(python), check(python, late_bound_s=bound_s))


@settings(max_examples=150, deadline=None)
@given(scenarios(free=True), st.sampled_from([0.5, 5.0, BOUND_S]),
       st.randoms(use_true_random=False), st.sampled_from([16, 100, 300, 1 << 22]))
def test_the_compiled_scanner_derives_the_python_paths_facts(tmp_path_factory, scenario,
                                                             bound_s, rnd, block):
    ops = list(scenario.ops)
    rnd.shuffle(ops)
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    write_laid_out(path, ops, rnd)
    native, nf, nv, python, pf, pv = judged_both_ways(path, bound_s, block)
    assert nf == pf
    assert nv.to_dict() == pv.to_dict() and nv.summary() == pv.summary()
    assert nf.acked_undelivered() == pf.acked_undelivered()
    assert nf.delivered_uninvoked() == pf.delivered_uninvoked()
    assert nf.latencies() == pf.latencies()
    bound = round(bound_s * S)
    assert sorted(nf.slower_than(bound)) == sorted(pf.slower_than(bound))
    assert len(native) == len(ops) and list(native) == list(python) == ops   # built on use


@pytest.mark.parametrize("bad", [
    Op("sink", "ok", "deliver", "not-a-dict", 1, 0.0),
    Op("sink", "ok", "deliver", {"id": 7}, 1, 0.0),
    Op("c1", "invoke", "send", {"id": "x"}, 1, 0.0),
    Op("c1", "invoke", "campaign", "k1", 1, 0.0),
    Op("c1", "ok", "campaign", {"campaign": "k", "ids": ["k:1", 2]}, 1, 0.0),
    Op("c1", "ok", "campaign", {"campaign": "k", "ids": None}, 1, 0.0),
    Op("dlq", "ok", "park", 7, 1, 0.0),
    Op("nemesis", "invoke", "fault", {"step": 1}, 1, 0.0),
])
def test_ops_the_scanner_leaves_to_python_judge_and_fail_alike(tmp_path, bad):
    require_native()
    ops = [op("c1", "invoke", "send", "a", 0), op("c1", "ok", "send", "a", S), bad,
           op("sink", "ok", "deliver", {"id": "a", "worker": "w", "attempt": 1}, 2 * S)]
    path = tmp_path / "h.jsonl"
    write_history(path, ops)
    native, python = both_ways(lambda: check(load_with_facts(path)).to_dict())
    assert native == python


def test_a_history_changed_after_scanning_is_not_built_from_the_new_file(tmp_path):
    require_native()
    path = tmp_path / "h.jsonl"
    write_history(path, [op("c1", "invoke", "send", "a", 0)])
    history = load_with_facts(path)
    assert isinstance(history, _ScannedHistory) and len(history) == 1
    with open(path, "a", encoding="utf-8") as f:
        f.write(op("c1", "ok", "send", "a", 1).to_json() + "\n")
    with pytest.raises(HarnessError, match="changed since it was loaded"):
        list(history)


@settings(max_examples=150, deadline=None)
@given(scenarios(free=True), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3),
                                                st.sampled_from(list(b'{}[]",:\\ 0-9e\n'))),
                                      min_size=1, max_size=3), st.sampled_from([64, 1 << 22]))
def test_the_compiled_scanner_judges_mutated_histories_as_python_does(tmp_path_factory,
                                                                      scenario, mutations,
                                                                      block):
    require_native()
    data = bytearray(b"".join(o.to_json().encode() + b"\n" for o in scenario.ops))
    for at, cut, byte in mutations:
        at %= len(data) + 1
        data[at:at + cut] = bytes([byte])
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    path.write_bytes(bytes(data))
    native, python = both_ways(lambda: check(load_with_facts(path)).to_dict(), block)
    assert native == python
