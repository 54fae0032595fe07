"""Workload and observer recording logic against a tiny fake API and sink on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from harness.errors import HarnessError
from harness.history import HistoryWriter, campaign_message_id, load_history
from harness.observer import DeliveryObserver
from harness.verdict import check
from harness.workload import CHANNELS, Workload, outcome_of_status


class FakeStack:
    """API + sink in one server. `answer(body) -> status | "hang" | "reset"` decides each POST;
    accepted messages are delivered `copies(id)` times into the sink."""

    def __init__(self, answer=lambda body: 202, copies=lambda m: 1) -> None:
        self.answer, self.copies = answer, copies
        self.requests: list[tuple[str, dict]] = []
        self.deliveries: list[dict] = []
        self.sink_down = False
        self.sink_reads = 0
        self.on_sink_read = lambda: None
        self.release = threading.Event()
        self.lock = threading.Lock()
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stack.lock:
                    stack.requests.append((self.path, body))
                status = stack.answer(body)
                if status == "hang":
                    stack.release.wait(5)
                    return
                if status == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if 200 <= status < 300:
                    ids = ([campaign_message_id(body["campaign_id"], r) for r in body["recipients"]]
                           if self.path == "/campaigns" else [body["id"]])
                    for m in ids:
                        for k in range(stack.copies(m)):
                            stack.deliver(m, attempt=k + 1)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                url = urlparse(self.path)
                q = parse_qs(url.query)
                with stack.lock:
                    stack.sink_reads += 1
                stack.on_sink_read()
                if stack.sink_down:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                offset, limit = int(q["offset"][0]), int(q["limit"][0])
                with stack.lock:
                    page = stack.deliveries[offset:offset + limit]
                data = json.dumps({"deliveries": page, "next": offset + len(page)}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def deliver(self, m: str, attempt: int = 1, worker: str = "w1") -> None:
        with self.lock:
            self.deliveries.append({"id": m, "worker": worker, "attempt": attempt,
                                    "ts": time.time()})

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack():
    stacks = []

    def make(**kw) -> FakeStack:
        stacks.append(FakeStack(**kw))
        return stacks[-1]
    yield make
    for s in stacks:
        s.close()


@pytest.fixture
def writer(tmp_path):
    with HistoryWriter(tmp_path / "history.jsonl") as w:
        yield w


def pairs(history):
    """process -> [(type, f, value)...] in order."""
    by_process = defaultdict(list)
    for op in history:
        by_process[op.process].append((op.type, op.f, op.value))
    return by_process


@pytest.mark.parametrize("status, outcome", [
    (200, "ok"), (202, "ok"), (400, "fail"), (404, "fail"), (429, "fail"), (503, "fail"),
    (500, "info"), (502, "info"), (504, "info"), (302, "info")])
def test_outcome_of_status(status, outcome):
    assert outcome_of_status(status) == outcome


def test_every_request_is_an_invoke_then_its_honest_outcome(stack, writer):
    script = {0: 202, 1: 400, 2: 503, 3: 500, 4: "hang", 5: "reset"}
    api = stack(answer=lambda body: script[int(body["id"][-8:]) % 6])
    workload = Workload(api.url, writer, clients=3, rate=500, count=24, run_id="run7",
                        timeout_s=0.5)
    outcomes = workload.run()
    history = load_history(writer.path)
    expected = {0: "ok", 1: "fail", 2: "fail", 3: "info", 4: "info", 5: "info"}
    seen = {}
    for ops in pairs(history).values():
        # a client has one request in flight: invoke, completion, invoke, completion...
        assert [t for t, _, _ in ops[0::2]] == ["invoke"] * len(ops[0::2])
        for (_, f, m), (outcome, f2, m2) in zip(ops[0::2], ops[1::2]):
            assert (f, f2, m2) == ("send", "send", m)
            seen[m] = outcome
    assert sorted(seen) == [f"run7-{k:08d}" for k in range(24)]
    assert seen == {m: expected[int(m[-8:]) % 6] for m in seen}
    assert outcomes == {"ok": 4, "fail": 8, "info": 12}
    assert workload.acknowledged_ids() == {m for m, o in seen.items() if o == "ok"}
    for path, body in api.requests:
        assert path == "/messages" and body["channel"] in CHANNELS
        assert set(body) == {"id", "channel", "to", "body"}


def test_campaigns_record_their_derived_ids(stack, writer):
    api = stack()
    workload = Workload(api.url, writer, clients=2, rate=500, count=4, campaign_share=1.0,
                        campaign_size=3, run_id="r")
    workload.run()
    invokes = [op for op in load_history(writer.path) if op.type == "invoke"]
    assert {op.f for op in invokes} == {"campaign"}
    for op in invokes:
        path, body = next((p, b) for p, b in api.requests
                          if b["campaign_id"] == op.value["campaign"])
        assert path == "/campaigns" and len(body["recipients"]) == 3
        assert op.value["ids"] == [campaign_message_id(body["campaign_id"], r)
                                   for r in body["recipients"]]
    assert len(workload.acknowledged_ids()) == 12


def test_the_rate_paces_the_schedule_and_a_duration_bounds_it(stack, writer):
    api = stack()
    t0 = time.monotonic()
    Workload(api.url, writer, clients=4, rate=40, duration=0.5).run()
    elapsed = time.monotonic() - t0
    invokes = [op for op in load_history(writer.path) if op.type == "invoke"]
    assert len(invokes) == 20          # due times k/40 for k in 0..19 fall within 0.5 s
    assert 0.45 <= elapsed < 5
    # Not sent in a burst: no request goes before its due time k/40 (the i-th earliest invoke is not
    # before the i-th due time). Late is allowed: a loaded machine may start the clients late.
    started = sorted((op.time / 1e9 - t0) for op in invokes)
    assert all(at >= k / 40 - 0.002 for k, at in enumerate(started)), started


def test_stop_ends_the_run_cleanly(stack, writer):
    api = stack()
    workload = Workload(api.url, writer, clients=2, rate=50, duration=60).start()
    deadline = time.monotonic() + 5
    while sum(workload.outcomes.values()) < 5 and time.monotonic() < deadline:
        workload._stop.wait(0.01)
    workload.stop()
    assert workload.join(timeout=5)
    types = [op.type for op in load_history(writer.path)]
    assert types.count("invoke") == types.count("ok") >= 5


def test_a_refused_connection_is_a_definite_failure(writer):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Workload(f"http://127.0.0.1:{port}", writer, clients=1, rate=100, count=2).run()
    assert [op.type for op in load_history(writer.path)] == ["invoke", "fail"] * 2


def test_a_workload_needs_a_bound(writer):
    with pytest.raises(ValueError):
        Workload("http://127.0.0.1:1", writer)


# --- observer --------------------------------------------------------------------------------

def test_poll_reads_the_sink_incrementally_in_pages(stack, writer):
    sink = stack()
    for i in range(25):
        sink.deliver(f"m{i}", worker=f"w{i % 2}")
    observer = DeliveryObserver(sink.url, writer, page=10)
    assert observer.poll() == 25 and observer.offset == 25
    assert observer.poll() == 0
    sink.deliver("late")
    assert observer.poll() == 1
    ops = list(load_history(writer.path))
    assert [op.value["id"] for op in ops] == [f"m{i}" for i in range(25)] + ["late"]
    assert all(op.f == "deliver" and op.type == "ok" and op.process == "sink" for op in ops)
    for op, d in zip(ops, sink.deliveries):
        assert op.wall == d["ts"] and op.time == writer.to_monotonic(d["ts"])
        assert op.value == {"id": d["id"], "worker": d["worker"], "attempt": 1}


def test_drain_waits_for_the_expected_ids_then_records_ok(stack, writer):
    sink = stack()
    pending = ["a", "b", "c"]
    sink.on_sink_read = lambda: pending and sink.deliver(pending.pop(0))  # one per read
    observer = DeliveryObserver(sink.url, writer)
    missing = observer.drain(lambda: {"a", "b", "c"}, deadline_s=10, interval_s=0.01)
    assert missing == frozenset()
    ops = list(load_history(writer.path))
    assert (ops[0].f, ops[0].type) == ("drain", "invoke")
    assert (ops[-1].f, ops[-1].type, ops[-1].value) == ("drain", "ok",
                                                        {"expected": 3, "missing": 0})
    assert {op.value["id"] for op in ops if op.f == "deliver"} == {"a", "b", "c"}


def test_drain_gives_up_at_its_deadline_and_says_what_is_missing(stack, writer):
    sink = stack()
    sink.deliver("a")
    observer = DeliveryObserver(sink.url, writer)
    observer.record_parked(["p", "p"])
    t0 = time.monotonic()
    missing = observer.drain(["a", "p", "never"], deadline_s=0.3, interval_s=0.05)
    assert missing == {"never"} and time.monotonic() - t0 >= 0.3
    ops = list(load_history(writer.path))
    assert [op.value for op in ops if op.f == "park"] == ["p"]
    assert ops[-1].value == {"expected": 3, "missing": 1} and ops[-1].type == "ok"


def test_drain_with_the_sink_down_is_an_info_not_an_ok(stack, writer):
    sink = stack()
    sink.sink_down = True
    observer = DeliveryObserver(sink.url, writer)
    with pytest.raises(HarnessError, match="cannot read deliveries"):
        observer.poll()
    assert observer.drain(["a"], deadline_s=0.2, interval_s=0.05) == {"a"}
    assert load_history(writer.path)[-1].type == "info"


def test_a_sink_that_answers_nonsense_is_a_harness_error(stack, writer):
    sink = stack()
    sink.deliveries.append({"no-id": 1})
    with pytest.raises(HarnessError, match="answered without"):
        DeliveryObserver(sink.url, writer).poll()


def test_background_following_records_deliveries_during_the_run(stack, writer):
    sink = stack()
    observer = DeliveryObserver(sink.url, writer).start(interval_s=0.01)
    sink.deliver("a")
    deadline = time.monotonic() + 5
    while "a" not in observer.delivered and time.monotonic() < deadline:
        observer._closing.wait(0.01)
    observer.close()
    assert "a" in observer.delivered


# --- the whole recording chain, judged ------------------------------------------------------

@pytest.mark.parametrize("copies, status", [(lambda m: 1, "valid"),
                                            (lambda m: 2 if m.endswith("3") else 1, "invalid"),
                                            (lambda m: 0 if m.endswith("5") else 1, "invalid")])
def test_a_recorded_run_is_judged_by_the_checkers(stack, writer, copies, status):
    api = stack(copies=copies)
    workload = Workload(api.url, writer, clients=3, rate=500, count=30, campaign_share=0.2,
                        campaign_size=2, seed=3)
    workload.run()
    observer = DeliveryObserver(api.url, writer)
    observer.drain(workload.acknowledged_ids, deadline_s=0.5, interval_s=0.05)
    verdict = check(load_history(writer.path))
    assert verdict.status == status, verdict.summary()
