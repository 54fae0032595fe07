"""Live progress goes through logging: one record per line, a ticker while a phase lasts,
never twice the same line when a caller hands the logging callback back down."""

from __future__ import annotations

import logging
import time

from harness.progress import Ticker, progress_to, say


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "harness"]


def test_every_line_is_logged_and_handed_to_a_callback(caplog):
    caplog.set_level(logging.INFO, logger="harness")
    seen: list[str] = []
    progress_to(seen.append)("[scenario] resetting the stack")
    assert seen == ["[scenario] resetting the stack"]
    assert _lines(caplog) == ["[scenario] resetting the stack"]


def test_the_logging_callback_handed_back_logs_once(caplog):
    caplog.set_level(logging.INFO, logger="harness")
    progress_to(say)("[search] run 1")
    progress_to(None)("[scenario] draining")
    assert _lines(caplog) == ["[search] run 1", "[scenario] draining"]


def test_ticker_tells_while_its_block_lasts_and_stops_after(caplog):
    caplog.set_level(logging.INFO, logger="harness")
    with Ticker(lambda s: f"[workload +{s:.2f}s] tick", interval_s=0.05):
        time.sleep(0.4)
    ticks = len(_lines(caplog))
    assert 3 <= ticks <= 9, _lines(caplog)
    assert all(line.startswith("[workload +") for line in _lines(caplog))
    time.sleep(0.2)
    assert len(_lines(caplog)) == ticks


def test_a_failing_progress_line_does_not_stop_the_ticker(caplog):
    caplog.set_level(logging.INFO, logger="harness")
    calls = []

    def line(_s: float) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("gone")
        return "fine"

    with Ticker(line, interval_s=0.05):
        time.sleep(0.3)
    assert "fine" in _lines(caplog)
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_the_plugin_keeps_pika_chatter_out_of_live_logs_unless_asked():
    from harness import plugin

    class Config:
        stash: dict = {}

        def addinivalue_line(self, *_args) -> None:
            pass

        def getoption(self, _name):
            return None

        def getini(self, _name):
            return ""

    pika = logging.getLogger("pika")
    before = pika.level
    try:
        pika.setLevel(logging.NOTSET)
        plugin.pytest_configure(Config())
        assert not logging.getLogger("pika.adapters.blocking_connection").isEnabledFor(logging.INFO)
        assert logging.getLogger("pika.connection").isEnabledFor(logging.WARNING)
        pika.setLevel(logging.DEBUG)   # a user's own choice stands
        plugin.pytest_configure(Config())
        assert pika.level == logging.DEBUG
    finally:
        pika.setLevel(before)


def test_a_long_wait_on_readiness_says_what_it_still_waits_for(monkeypatch):
    import threading

    from stack import health
    from stack import stack as stack_module

    class Check:
        def __init__(self, what: str, ready: threading.Event) -> None:
            self.what, self.ready = what, ready

        def wait(self, _stack, _deadline: float) -> None:
            assert self.ready.wait(20), f"{self.what} never released"

    rabbit, proxy = threading.Event(), threading.Event()
    proxy.set()
    monkeypatch.setattr(health, "checks_for", lambda _stack, _nodes, _settled=False: [Check("proxy answers", proxy),
                                                                      Check("RabbitMQ running", rabbit)])
    monkeypatch.setattr(stack_module, "WAITING_EVERY_S", 0.05)
    told: list[str] = []
    stack = stack_module.Stack("small", progress=told.append)   # no container: plain data
    waiter = threading.Thread(target=stack.wait_healthy)
    waiter.start()
    try:
        deadline = time.monotonic() + 20
        while not any(line.endswith("on 1: RabbitMQ running") for line in list(told)):
            assert time.monotonic() < deadline, f"no line said what is still awaited: {told}"
            time.sleep(0.02)
        assert all(line.startswith("[stack] waiting +") for line in told), told
    finally:
        rabbit.set()
        waiter.join(20)
    assert not waiter.is_alive()
    settled = len(told)
    time.sleep(0.2)
    assert len(told) == settled, "it kept saying it waits after everything was ready"
