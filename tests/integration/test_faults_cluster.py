"""Faults that need three nodes (partitions, failovers), seen from outside, against the real "default" stack."""

from __future__ import annotations

import time

import pytest

from faults.base import FaultContext, get_fault
from faults.roles import rabbitmq_queue_leader, redis_primary, zk_leader
from stack import health

pytestmark = pytest.mark.chaos

QUEUE = "chaos-test.quorum"  # declared by the fixture: this stack runs no app to declare one


@pytest.fixture(scope="module")
def stack():
    from stack.stack import Stack

    with Stack("default", with_services=False) as s:
        # Test speed only: a peer counts as down after net_ticktime (default 60 s); make it 8 s on
        # every node so a partition shows within the test's budget.
        for node in s.topology.names("rabbitmq"):
            code, out = s.exec(node, ["rabbitmqctl", "eval", "net_kernel:set_net_ticktime(8, 0)."],
                               user="rabbitmq", timeout=30)
            assert code == 0, out
        declare_quorum_queue(s, QUEUE)
        yield s


def declare_quorum_queue(stack, name: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url()))
    try:
        connection.channel().queue_declare(name, durable=True, arguments={
            "x-queue-type": "quorum", "x-quorum-initial-group-size": len(stack.topology.names("rabbitmq"))})
    finally:
        connection.close()


def make(stack, name, targets=(), **params):
    return get_fault(name)(FaultContext(stack, step=f"t-{name}", wait_timeout=90), list(targets), params)


def running_nodes(stack, node) -> list[str]:
    return sorted(health.rabbitmq_cluster_status(stack, node).get("running_nodes", []))


def test_partition_isolates_one_rabbitmq_node_while_the_others_keep_a_majority(stack):
    everyone = sorted(f"rabbit@{n}" for n in stack.topology.names("rabbitmq"))
    fault = make(stack, "partition", ["rabbitmq"], grouping="isolate", node="rmq3")
    effect = fault.inject()
    assert effect.facts["cut"]["rmq3"] == ["rmq1", "rmq2"] and effect.facts["method"] == "iptables"
    assert effect.facts["probe"] and set(effect.facts["probe"].values()) == {"timeout"}

    def majority_sees_loss() -> tuple[bool, str]:
        running = running_nodes(stack, "rmq1")
        return running == ["rabbit@rmq1", "rabbit@rmq2"], f"rmq1 sees running {running}"

    health.wait_for("rmq1 and rmq2 to see rmq3 gone", majority_sees_loss, time.monotonic() + 60, interval=2)

    def isolated_knows() -> tuple[bool, str]:
        # pause_minority: rmq3 pauses (its CLI may not answer) or reports the other two gone
        try:
            running = running_nodes(stack, "rmq3")
        except Exception as exc:
            return True, f"rmq3 paused: {type(exc).__name__}"
        return running == ["rabbit@rmq3"] or not health._amqp_listening(stack, "rmq3"), f"rmq3 sees {running}"

    health.wait_for("rmq3 to lose its peers", isolated_knows, time.monotonic() + 60, interval=2)
    fault.heal()
    health.wait_for("all three RabbitMQ nodes running again",
                    lambda: (running_nodes(stack, "rmq1") == everyone, "rejoined"), time.monotonic() + 120,
                    interval=2)
    fault.heal()  # idempotent
    assert not stack.client.containers.list(all=True, filters={"label": ["chaos-harness.kind=helper",
                                                                         f"chaos-harness.run={stack.run_id}"]})


def test_rabbitmq_leader_stop_elects_a_new_leader(stack):
    old = rabbitmq_queue_leader(stack, QUEUE)
    fault = make(stack, "rabbitmq-leader-stop", queue=QUEUE)
    effect = fault.inject()
    assert effect.facts["old_leader"] == old and effect.facts["new_leader"] != old
    others = [n for n in stack.topology.names("rabbitmq") if n != old]
    assert rabbitmq_queue_leader(stack, QUEUE, avoid=(old,)) in others
    fault.heal()
    assert len(running_nodes(stack, old)) == 3


def test_redis_failover_names_a_new_master_and_the_old_one_replicates(stack):
    old = redis_primary(stack)
    fault = make(stack, "redis-failover", method="sentinel")
    effect = fault.inject()
    new = effect.facts["new_primary"]
    assert new != old and effect.facts["old_primary"] == old
    assert {health.sentinel_master(stack, s)["ip"] for s in stack.topology.names("sentinel")} == {new}
    fault.heal()
    info = health.redis_info(stack, old)
    assert info["role"] == "slave" and info["master_host"] == new


def test_redis_failover_by_kill_keeps_addresses_and_sentinels_out_of_tilt(stack):
    """A killed primary's name still resolves for Sentinels and replicas (/etc/hosts, pinned addresses):
    through Docker's DNS it would not, and a stalled lookup put Sentinels in TILT mode (FAULTS.md)."""
    old = redis_primary(stack)
    address = stack.node_ip(old)
    fault = make(stack, "redis-failover", method="kill")
    effect = fault.inject()
    assert effect.facts["new_primary"] != old
    fault.heal()
    stack.container(old).reload()
    networks = stack.container(old).attrs["NetworkSettings"]["Networks"]
    assert networks[stack.network_name]["IPAddress"] == address  # restarted at its own address
    for sentinel in stack.topology.names("sentinel"):
        code, out = stack.exec(sentinel, ["getent", "hosts", old])
        assert code == 0 and out.split()[0] == address, out
        logs = stack.container(sentinel).logs().decode(errors="replace")
        assert "+tilt" not in logs, logs[-2000:]


def test_zk_leader_kill_makes_another_node_lead(stack):
    old = zk_leader(stack)
    fault = make(stack, "zk-leader-kill")
    effect = fault.inject()
    assert effect.facts["new_leader"] != old
    stack.container(old).reload()
    assert stack.container(old).status in ("exited", "dead")
    assert zk_leader(stack) == effect.facts["new_leader"]
    fault.heal()
    assert health.zk_mode(stack, old) == "follower"


def test_a_partition_heals_while_another_step_still_cuts_some_of_its_pairs(stack):
    """Two steps partition ZooKeeper at once (a generated schedule may overlap them): the first isolates
    zk1, the second zk2. The first's heal checks zk1-zk3 and leaves zk1-zk2 to the second, which still
    cuts it: before, it waited 30 s for that pair and failed (the nightly search's partition run)."""
    from faults.partition import node_ip, reach

    def step(name, node):
        return get_fault("partition")(FaultContext(stack, step=name, wait_timeout=90), ["zookeeper"],
                                      {"grouping": "isolate", "node": node})

    first, second = step("t-overlap-1", "zk1"), step("t-overlap-2", "zk2")
    first.inject()
    second.inject()
    try:
        first.heal()
        ips = {n: node_ip(stack, n) for n in ("zk2", "zk3")}
        assert reach(second.helpers["zk1"], "zk1", list(ips.values())) == {ips["zk2"]: "timeout",
                                                                           ips["zk3"]: "refused"}
    finally:
        second.heal()
        first.heal()  # idempotent
    assert reach_all_from(stack, "zk1") == {"refused"}

    stack.wait_healthy(stack.topology.by_role("zookeeper"))  # the kind's own check: one leader again


def reach_all_from(stack, node) -> set[str]:
    """How every other ZooKeeper node answers from `node`'s namespace, probed through a fresh helper."""
    from faults.partition import node_ip, reach, remove_helper, start_helper

    helper = start_helper(FaultContext(stack, step="t-probe"), node, "CHAOS-PROBE")
    try:
        others = [node_ip(stack, n) for n in stack.topology.names("zookeeper") if n != node]
        return set(reach(helper, node, others).values())
    finally:
        remove_helper(helper)
