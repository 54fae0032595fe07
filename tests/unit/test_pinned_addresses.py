"""Every node's address is fixed by its place in the topology, and Redis and Sentinel nodes name each other
from /etc/hosts at those addresses (no Docker needed to check the arithmetic and the choice of names)."""

from __future__ import annotations

import ipaddress

import pytest

from harness.errors import HarnessError
from stack.kinds import kind_of
from stack.stack import Stack


def stack_on(subnet: str, topology: str = "default") -> Stack:
    stack = Stack(topology)
    stack._subnet = ipaddress.ip_network(subnet)
    return stack


def test_addresses_follow_the_topology_order_and_differ():
    stack = stack_on("172.30.0.0/16")
    names = [n.name for n in stack.topology.nodes]
    addresses = [stack.node_ip(n) for n in names]
    assert addresses[0] == "172.30.0.16"
    assert len(set(addresses)) == len(names)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("172.30.0.0/16") for a in addresses)


def test_a_subnet_too_small_for_the_stack_is_refused():
    stack = stack_on("10.1.2.0/28")  # 16 addresses: none left from the 16th on
    with pytest.raises(HarnessError, match="no room"):
        stack.node_ip(stack.topology.nodes[0].name)


def test_an_unknown_node_is_refused():
    with pytest.raises(HarnessError, match="no node"):
        stack_on("172.30.0.0/16").node_ip("nosuch")


def test_redis_and_sentinel_nodes_pin_each_other_and_services_pin_nothing():
    topo = Stack("default").topology
    node = topo.node("sentinel1")
    assert sorted(kind_of(node.role).hosts(topo, node)) == ["redis1", "redis2", "sentinel2", "sentinel3"]
    node = topo.node("redis2")
    assert sorted(kind_of(node.role).hosts(topo, node)) == ["redis1", "sentinel1", "sentinel2", "sentinel3"]
    for name in ("api", "worker1", "rmq1", "zk1", "proxy"):
        node = topo.node(name)
        assert kind_of(node.role).hosts(topo, node) == [], name
