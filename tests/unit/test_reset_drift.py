"""The reset redeploys every app service whose container is not its stack file's spec: a variable of
the spec changed, a CHAOS_ switch left on, or any variable a deploy set (its names are on the
container's label), so an app's own bug input (MAILER_BUGS) does not outlive the run that set it."""

from types import SimpleNamespace

import pytest

from stack import cleanup
from stack.reset import _redeploy_drifted_services
from stack.topology import NodeSpec


class FakeContainer:
    def __init__(self, env: dict[str, str], labels: dict[str, str] | None = None) -> None:
        self.attrs = {"Config": {"Env": [f"{k}={v}" for k, v in env.items()] + ["PATH=/usr/bin"]}}
        self.labels = labels or {}

    def reload(self) -> None:
        pass


class FakeStack:
    def __init__(self, containers: dict[str, FakeContainer]) -> None:
        self.topology = SimpleNamespace(nodes=[NodeSpec(name, "sender", "img", env={"PORT": "8000"})
                                               for name in containers])
        self.containers = containers
        self.redeployed: list[str] = []

    def container(self, name: str) -> FakeContainer:
        return self.containers[name]

    def redeploy(self, name: str, env, wait: bool) -> None:
        assert env is None and wait is False
        self.redeployed.append(name)


@pytest.mark.parametrize("env, labels, redeployed", [
    ({"PORT": "8000"}, {}, False),
    ({"PORT": "9000"}, {}, True),
    ({"PORT": "8000", "CHAOS_SWITCHES": "x"}, {}, True),
    ({"PORT": "8000", "MAILER_BUGS": "stale-redis"}, {cleanup.LABEL_OVERRIDES: "MAILER_BUGS"}, True),
    ({"PORT": "8000", "MAILER_BUGS": "stale-redis"}, {}, False),  # not set by a deploy: the image's own
])
def test_a_service_is_redeployed_exactly_when_it_drifted(env, labels, redeployed):
    stack = FakeStack({"sender1": FakeContainer(env, labels)})
    assert _redeploy_drifted_services(stack) == (["sender1"] if redeployed else [])


def test_the_clock_library_env_of_an_x_clock_node_is_not_drift():
    """Counted as drift, it had every reset redeploy the reference app's API and workers (2.3 s)."""
    from stack import clock

    node = NodeSpec("api", "api", "img", env={"PORT": "8000"}, clock=True)
    stack = FakeStack({"api": FakeContainer({"PORT": "8000", **clock.node_env()})})
    stack.topology.nodes = [node]
    assert _redeploy_drifted_services(stack) == []
    # without it (the library gone, as from a container built before x-clock), it is drift
    stack = FakeStack({"api": FakeContainer({"PORT": "8000"})})
    stack.topology.nodes = [node]
    assert _redeploy_drifted_services(stack) == ["api"]
