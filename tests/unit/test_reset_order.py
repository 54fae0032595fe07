"""The reset's order, which keeps one run's messages out of the next: the services the stack file names
under `x-chaos.reset.stop` are all gone before any reset step runs (a running consumer holds prefetched
messages that no purge reaches), they stop together (a barrier that sequential stops would never meet),
the others' health is checked meanwhile, and they start again only after the last step."""

import threading
from types import SimpleNamespace

import pytest

from stack import reset
from stack.topology import NodeSpec

STOPPED = ("scheduler", "worker1", "worker2")


class FakeContainer:
    def __init__(self, name: str, stack: "FakeStack") -> None:
        self.name, self.stack = name, stack
        self.status = "running"
        self.labels: dict[str, str] = {}
        self.attrs = {"Config": {"Env": []}}

    def reload(self) -> None:
        pass

    def stop(self, timeout: int) -> None:
        assert timeout == reset.STOP_GRACE_S
        self.stack.barrier.wait(timeout=5)  # BrokenBarrierError unless every stop runs at once
        if self.name in self.stack.failing:
            raise RuntimeError(f"{self.name} would not stop")
        self.stack.log.append(f"stopped {self.name}")

    def start(self) -> None:
        self.stack.log.append(f"started {self.name}")


class FakeStack:
    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        nodes = [NodeSpec(name, "infra", "img") for name in ("rabbit1", "api")]
        nodes += [NodeSpec(name, "infra", "img") for name in STOPPED]
        self.topology = SimpleNamespace(
            nodes=nodes, names=lambda role: [], node=lambda name: next(n for n in nodes if n.name == name),
            app=SimpleNamespace(reset_stop=STOPPED, reset=("purge",), base_dir="."))
        self.barrier = threading.Barrier(len(STOPPED))
        self.failing = failing
        self.log: list[str] = []
        self.run_id = "run"
        self.events: list[dict] = []  # what Docker's event stream reports since quiet_since
        self.client = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: []),
                                      events=lambda **kw: iter(self.events))
        self.quiet_since: float | None = None  # unknown: the reset takes its full path
        self.last_disturbances: list[str] = []
        self._containers = {n.name: FakeContainer(n.name, self) for n in nodes}

    def container(self, name: str) -> FakeContainer:
        return self._containers[name]

    def note_disturbed(self) -> None:
        self.quiet_since = None

    def wait_healthy(self, nodes=None, settled: bool = False) -> dict:
        self.log.append(("settled " if settled else "healthy ") + ",".join(sorted(n.name for n in nodes)))
        return {}


@pytest.fixture
def fake(monkeypatch):
    stack = FakeStack()
    monkeypatch.setattr(reset, "run_steps", lambda s, steps, base: s.log.append(f"steps {list(steps)}"))
    monkeypatch.setattr(reset, "_redeploy_drifted_services", lambda s: [])
    monkeypatch.setattr("faults.sweep.sweep", lambda client: [])
    return stack


def test_every_stop_ends_before_the_steps_and_every_start_follows_them(fake):
    timings: dict[str, float] = {}
    reset.reset_stack(fake, timings)
    steps = fake.log.index("steps ['purge']")
    assert sorted(e for e in fake.log[:steps] if e.startswith("stopped")) == [f"stopped {n}" for n in sorted(STOPPED)]
    assert "healthy api,rabbit1" in fake.log[:steps]
    assert sorted(fake.log[steps + 1:-1]) == [f"started {n}" for n in sorted(STOPPED)]
    assert fake.log[-1] == "healthy " + ",".join(sorted(STOPPED))
    assert set(timings) == {"sweep", "heal", "stop", "health", "steps", "start"}


def test_a_service_that_will_not_stop_fails_the_reset_before_any_step(fake, monkeypatch):
    fake.failing = ("worker2",)
    with pytest.raises(RuntimeError, match="worker2 would not stop"):
        reset.reset_stack(fake)
    assert not any(e.startswith("steps") or e.startswith("started") for e in fake.log)


def test_a_stopped_node_is_started_and_a_paused_one_unpaused(fake):
    fake.client.containers.list = lambda **kw: [
        SimpleNamespace(attrs={"Labels": {"chaos-harness.node": "rabbit1"}, "State": "running"})]
    fake.container("api").status = "exited"
    fake.container("scheduler").status = "paused"
    fake.container("scheduler").unpause = lambda: fake.log.append("unpaused scheduler")
    reset._heal_containers(fake)
    assert "started api" in fake.log and "unpaused scheduler" in fake.log
    assert not any("rabbit1" in e for e in fake.log)


def test_states_come_from_one_list_call_filtered_on_the_run(fake):
    calls = []

    def listing(**kw):
        calls.append(kw)
        return [SimpleNamespace(attrs={"Labels": {"chaos-harness.node": "api"}, "State": "exited"})]

    fake.client.containers.list = listing
    assert reset._states(fake) == {"api": "exited"}
    assert calls == [{"all": True, "sparse": True, "ignore_removed": True,
                      "filters": {"label": "chaos-harness.run=run"}}]


# ------------------------------------------------------------------ the undisturbed path
def quiet(fake, seconds_ago: float = 60.0):
    import time

    fake.quiet_since = time.time() - seconds_ago
    return fake


def test_an_undisturbed_stack_gets_the_kinds_settled_checks_and_no_drift_or_clock_check(fake, monkeypatch):
    quiet(fake)
    monkeypatch.setattr(reset, "_zero_clocks", lambda s: pytest.fail("clocks checked on an undisturbed stack"))
    monkeypatch.setattr(reset, "_redeploy_drifted_services", lambda s: pytest.fail("drift checked"))
    reset.reset_stack(fake)
    steps = fake.log.index("steps ['purge']")
    assert "settled api,rabbit1" in fake.log[:steps]
    assert fake.log[-1] == "healthy " + ",".join(sorted(STOPPED))  # restarted services: their full checks
    assert fake.last_disturbances == [] and fake.quiet_since is not None


def test_a_reset_that_fails_leaves_the_stack_unknown(fake):
    quiet(fake)
    fake.failing = ("worker1",)
    with pytest.raises(RuntimeError):
        reset.reset_stack(fake)
    assert fake.quiet_since is None  # the next reset checks everything


@pytest.mark.parametrize("action", ["die", "kill", "start", "pause", "oom", "create", "destroy"])
def test_a_docker_event_on_the_run_since_it_was_quiet_sends_the_reset_down_its_full_path(fake, action):
    import time

    quiet(fake)
    fake.events = [{"Action": "exec_start: sh -c ruok", "timeNano": time.time_ns()},
                   {"Action": action, "timeNano": time.time_ns(),
                    "Actor": {"Attributes": {"chaos-harness.node": "rabbit1"}}}]
    reset.reset_stack(fake)
    assert fake.last_disturbances == [f"rabbit1 {action}"]
    assert "healthy api,rabbit1" in fake.log and not any(e.startswith("settled") for e in fake.log)


def test_the_harness_own_probes_do_not_count_as_disturbing(fake):
    import time

    quiet(fake)
    fake.events = [{"Action": a, "timeNano": time.time_ns()} for a in
                   ("exec_create: rabbitmqctl", "exec_start: rabbitmqctl", "exec_die", "archive-path",
                    "health_status: healthy")]
    reset.reset_stack(fake)
    assert fake.last_disturbances == [] and "settled api,rabbit1" in fake.log


def test_a_fault_context_notes_the_stack_disturbed(fake):
    from faults.base import FaultContext

    quiet(fake)
    FaultContext(fake)
    assert fake.quiet_since is None
    reset.reset_stack(fake)
    assert fake.last_disturbances == ["unknown"]
    assert "healthy api,rabbit1" in fake.log and not any(e.startswith("settled") for e in fake.log)


def test_a_sweep_that_removed_something_sends_the_reset_down_its_full_path(fake, monkeypatch):
    quiet(fake)
    monkeypatch.setattr("faults.sweep.sweep", lambda client: ["chaos-r1-helper-x"])
    reset.reset_stack(fake)
    assert fake.last_disturbances == ["unknown"] and "healthy api,rabbit1" in fake.log


def test_a_deploy_or_a_stop_notes_the_stack_disturbed():
    from stack.stack import Stack

    stack = Stack("small")
    stack.quiet_since = 1.0
    stack.containers["api"] = SimpleNamespace(reload=lambda: None, attrs={})
    import stack.stopping as stopping

    real = stopping.stop
    stopping.stop = lambda container, grace: SimpleNamespace(killed=False, exit_code=0, seconds=0.0)
    try:
        stack.stop_node("api")
    finally:
        stopping.stop = real
    assert stack.quiet_since is None


def test_an_event_from_before_the_stack_was_quiet_does_not_count(fake):
    import time

    quiet(fake, seconds_ago=1.0)
    fake.events = [{"Action": "start", "timeNano": time.time_ns() - 5_000_000_000,
                    "Actor": {"Attributes": {"chaos-harness.node": "worker1"}}}]
    assert reset.disturbances(fake) == []


def test_settled_rabbitmq_asks_each_node_for_amqp_and_never_the_cli(monkeypatch):
    from stack import health
    from stack.kinds import kind_of

    answering = {"rmq1": True, "rmq2": False}
    monkeypatch.setattr(health, "_amqp_listening", lambda stack, node: answering[node])
    monkeypatch.setattr(health, "rabbitmq_cluster_status", lambda *a: pytest.fail("CLI asked"))
    nodes = [NodeSpec("rmq1", "rabbitmq", "img"), NodeSpec("rmq2", "rabbitmq", "img")]
    (check,) = kind_of("rabbitmq").settled_checks(None, nodes)
    assert check.probe(None) == (False, "AMQP not answering on ['rmq2']")
    answering["rmq2"] = True
    assert check.probe(None)[0] is True
