"""The stack in real containers: cluster facts after `up`, nothing left after `down`."""

from __future__ import annotations

import pytest

from stack import cleanup, health
from stack.docker_api import docker_client
from stack.stack import Stack

pytestmark = pytest.mark.chaos


def run_resources(run_id: str) -> tuple[list, list]:
    client = docker_client()
    label = {"label": f"{cleanup.LABEL_RUN}={run_id}"}
    return client.containers.list(all=True, filters=label, ignore_removed=True), client.networks.list(filters=label)


def test_default_topology_comes_up_with_real_cluster_facts_and_leaves_nothing():
    with Stack("default", with_services=False) as stack:
        rmq = [f"rabbit@rmq{i}" for i in (1, 2, 3)]
        for node in ("rmq1", "rmq2", "rmq3"):
            status = health.rabbitmq_cluster_status(stack, node)
            assert sorted(status["running_nodes"]) == rmq, node
            assert not status["partitions"], node

        modes = sorted(health.zk_mode(stack, n) for n in ("zk1", "zk2", "zk3"))
        assert modes == ["follower", "follower", "leader"]

        replica = health.redis_info(stack, "redis2")
        assert replica["role"] == "slave" and replica["master_link_status"] == "up"
        assert health.redis_info(stack, "redis1")["role"] == "master"

        for sentinel in ("sentinel1", "sentinel2", "sentinel3"):
            view = health.sentinel_master(stack, sentinel)
            assert (view["ip"], view["port"]) == ("redis1", "6379"), sentinel
            assert view["num-other-sentinels"] == "2", sentinel

        from faults.toxiproxy.client import ToxiproxyClient

        proxy = ToxiproxyClient(f"http://127.0.0.1:{stack.host_port('proxy', 8474)}")
        assert set(proxy.proxies()) == {link.name for link in stack.topology.links}

        containers, networks = run_resources(stack.run_id)
        assert len(containers) == len(stack.topology.nodes) and len(networks) == 1
        run_id = stack.run_id

    containers, networks = run_resources(run_id)
    assert containers == [] and networks == []
