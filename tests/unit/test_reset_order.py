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
        self.client = SimpleNamespace(containers=SimpleNamespace(list=lambda **kw: []))
        self._containers = {n.name: FakeContainer(n.name, self) for n in nodes}

    def container(self, name: str) -> FakeContainer:
        return self._containers[name]

    def wait_healthy(self, nodes=None) -> dict:
        self.log.append("healthy " + ",".join(sorted(n.name for n in nodes)))
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
