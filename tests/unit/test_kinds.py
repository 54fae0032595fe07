"""Node kinds: every role of the shipped topologies has the kind it should, and a kind registered from
outside the package is what readiness checks and faults ask about its nodes."""

from __future__ import annotations

import pytest

from stack import health
from stack.kinds import Kind, base, kind_of, known_kinds, register_kind
from stack.topology import NodeSpec, RunParams, Topology, build_topology


@pytest.mark.parametrize("name", ["default", "small"])
def test_shipped_topologies_roles_and_kinds(name):
    topo = build_topology(name, RunParams(run_id="unit", cookie="x", with_services=True))
    kinds = {n.role: kind_of(n.role).name for n in topo.nodes}
    assert kinds == {"rabbitmq": "rabbitmq", "zookeeper": "zookeeper", "redis": "redis", "sentinel": "sentinel",
                     "proxy": "proxy", "sink": "service", "api": "service", "scheduler": "service",
                     "worker": "service"}
    services = {n.role for n in topo.nodes if kind_of(n.role).service}
    assert services == {"api", "worker", "sink", "scheduler"}


@pytest.fixture
def registry(monkeypatch):
    known_kinds()  # built-ins loaded first, then the registry is this test's own copy
    monkeypatch.setattr(base, "_KINDS", dict(base._KINDS))


class FakeStack:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.asked: list[str] = []


def test_a_kind_registered_from_outside_is_asked_about_its_nodes(registry):
    @register_kind
    class Memcached(Kind):
        name = "memcached"

        def serving(self, stack, node):
            stack.asked.append(node)
            return True, "version 1.6"

    spec = NodeSpec(name="cache1", role="memcached", image="memcached")
    stack = FakeStack(Topology("custom", (spec,), ()))
    assert kind_of("memcached").name == "memcached" and not kind_of("memcached").service
    [check] = health.checks_for(stack, [spec])
    assert check.probe(stack) == (True, "version 1.6") and stack.asked == ["cache1"]

    from faults.nodes import serving

    assert serving(stack, "cache1") == (True, "version 1.6") and stack.asked == ["cache1", "cache1"]


def test_a_group_kind_is_checked_as_one_group(registry):
    @register_kind
    class Quorum(Kind):
        name = "quorum"
        group = True

        def checks(self, stack, nodes):
            return [health.Check("quorum", nodes[0].name, lambda s: (True, ""), tuple(n.name for n in nodes))]

    nodes = tuple(NodeSpec(name=f"q{i}", role="quorum", image="q") for i in range(3))
    stack = FakeStack(Topology("custom", nodes, ()))
    [check] = health.checks_for(stack, [nodes[1]])  # one node asked about: the whole group judged
    assert check.nodes == ("q0", "q1", "q2")


def test_two_kinds_cannot_claim_one_role(registry):
    with pytest.raises(ValueError, match="claimed by kinds 'rabbitmq' and 'other'"):
        @register_kind
        class Other(Kind):
            name = "other"
            roles = ("rabbitmq",)


def test_a_role_no_kind_claims_is_a_generic_service():
    assert kind_of("billing-api").name == "service" and kind_of("billing-api").service
