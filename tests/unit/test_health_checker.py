"""The `health` invariant and the `availability` measure on small histories written by hand: each case
can only pass if the checker judges the claim against the progress that was really made."""

from __future__ import annotations

import pytest

from harness.checkers import check_availability, check_health
from harness.history import Op
from harness.verdict import check

S = 1_000_000_000


def op(process, type_, f, value, t):
    return Op(process, type_, f, value, round(t * S), 1_700_000_000 + t)


def run(worker_says="ok", stall_from=10.0, until=40.0, fault=(4.0, 8.0), deliver_again=None, api=False):
    """Two workers; messages sent every 0.5 s and acknowledged; w1 delivers throughout, w2 delivers
    until `stall_from` (then again from `deliver_again`), while the queue holds messages; both answer
    health every second, w2 as `worker_says` after the stall starts."""
    ops = []
    if fault:
        ops += [op("nemesis", "invoke", "fault", {"action": "inject", "step": "1", "fault": "link-down",
                                                  "params": {}, "targets": ["workers:rmq"]}, fault[0]),
                op("nemesis", "ok", "fault", {"action": "inject", "step": "1", "fault": "link-down"}, fault[0]),
                op("nemesis", "invoke", "fault", {"action": "heal", "step": "1", "fault": "link-down"}, fault[1]),
                op("nemesis", "ok", "fault", {"action": "heal", "step": "1", "fault": "link-down"}, fault[1])]
    t, n = 0.0, 0
    while t < until:
        m = f"m{n}"
        ops += [op("c1", "invoke", "send", m, t), op("c1", "ok" if not api or t < stall_from else "fail", "send", m, t + 0.01)]
        worker = "w1" if n % 2 else "w2"
        if worker == "w2" and stall_from <= t and (deliver_again is None or t < deliver_again):
            pass  # w2 takes nothing: its messages wait
        elif not api or t < stall_from:
            ops.append(op("sink", "ok", "deliver", {"id": m, "worker": worker, "attempt": 1}, t + 0.2))
        t += 0.5
        n += 1
    for s in range(int(until)):
        waiting = 5 if s >= stall_from and not api and (deliver_again is None or s < deliver_again) else 0
        ops.append(op("broker", "ok", "backlog", {"messages": waiting}, s + 0.1))
        ops.append(op("w1", "ok", "health", {"role": "worker"}, s + 0.3))
        ops.append(op("w2", worker_says if s >= stall_from else "ok", "health", {"role": "worker"}, s + 0.3))
        ops.append(op("api", "ok", "health", {"role": "api", "serves": "requests"}, s + 0.4))
        ops.append(op("scheduler", "ok", "health", {"role": "scheduler"}, s + 0.5))
    return sorted(ops, key=lambda o: o.time)


def test_a_worker_healthy_while_its_queue_waits_and_it_delivers_nothing_violates():
    result = check_health(run())
    assert result.status == "invalid" and result.ids == {"w2"}
    assert "w2" == result.examples[0].id and "delivery while the queues held messages" in result.examples[0].detail
    assert result.counts["nodes"] == 3  # w1, w2 and the api; the scheduler delivers nothing: not judged


def test_a_worker_that_says_it_is_unhealthy_tells_the_truth():
    assert check_health(run(worker_says="fail")).status == "valid"


def test_no_answer_is_not_a_claim_of_health():
    assert check_health(run(worker_says="info")).status == "valid"


def test_a_stall_shorter_than_the_bound_is_not_a_lie():
    assert check_health(run(deliver_again=18.0)).status == "valid"  # 8 s < 10 s
    assert check_health(run(deliver_again=18.0), bound_s=5.0).status == "invalid"


def test_time_inside_a_fault_window_does_not_count():
    # the stall lasts 12 s, 6 of them inside the fault window: 6 s outside, under the bound
    assert check_health(run(stall_from=10.0, deliver_again=22.0, fault=(10.0, 16.0))).status == "valid"
    assert check_health(run(stall_from=10.0, deliver_again=22.0, fault=None)).status == "invalid"


def test_an_api_healthy_while_it_refuses_every_request_violates():
    result = check_health(run(api=True, stall_from=15.0))
    assert "api" in result.ids and "request acknowledged" in next(o.detail for o in result.examples if o.id == "api")


def test_histories_without_health_are_valid_and_say_so():
    ops = [op("c1", "invoke", "send", "m", 0), op("c1", "ok", "send", "m", 0.1),
           op("sink", "ok", "deliver", {"id": "m", "worker": "w", "attempt": 1}, 0.2)]
    result = check_health(ops)
    assert result.status == "valid" and result.note == "no service health was recorded"


def test_availability_counts_refused_and_unknown_inside_and_outside_faults():
    ops = [op("c1", "invoke", "send", "a", 1), op("c1", "ok", "send", "a", 1.1),
           op("c1", "invoke", "send", "b", 2), op("c1", "fail", "send", "b", 2.1),
           op("nemesis", "invoke", "fault", {"action": "inject", "step": "1", "fault": "pause", "params": {},
                                             "targets": ["rmq1"]}, 3),
           op("nemesis", "ok", "fault", {"action": "inject", "step": "1", "fault": "pause"}, 3),
           op("c1", "invoke", "send", "c", 4), op("c1", "info", "send", "c", 9),
           op("c2", "invoke", "send", "d", 4.5), op("c2", "ok", "send", "d", 4.6),
           op("nemesis", "invoke", "fault", {"action": "heal", "step": "1", "fault": "pause"}, 10),
           op("nemesis", "ok", "fault", {"action": "heal", "step": "1", "fault": "pause"}, 10),
           op("c1", "invoke", "send", "e", 11)]  # never completed: unknown
    result = check_availability(ops)
    assert result.status == "valid"
    assert result.counts == {"requests_outside": 3, "fail_outside": 1, "info_outside": 1,
                             "requests_inside": 2, "fail_inside": 0, "info_inside": 1}
    assert result.measures["unavailable_outside"] == pytest.approx(2 / 3, abs=1e-4)
    assert result.measures["unavailable_in_pause"] == 0.5
    assert check_availability(ops, max_unavailable=0.5).status == "invalid"
    assert check(ops, max_unavailable=0.9).results["availability"].status == "valid"
